"""Datasets built from edit runs (and, later, the LightningDataModules that read them)."""

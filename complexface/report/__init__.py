"""Outputs people look at: grids (and later plots and HTML reports)."""

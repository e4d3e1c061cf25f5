"""Human recognition studies of edited faces: design, rater server, simulated raters, export and analysis.

A study lives in one folder (``study.dir``): ``design.json``, ``stimuli/`` (copies), ``study.sqlite``,
``secret.key``, ``links/``, ``export/`` and the analysis outputs. ``study.py`` is the command line.
"""

"""complexface: generate and study complex facial expressions with FACS Action Unit control.

The plain Python API (``complexface.api``) is re-exported lazily: ``import complexface`` stays light, and
``complexface.edit`` imports the face pipeline and editors on first use. ``complexface.measure`` is the measurement
package, so the API's ``measure`` is re-exported as ``measure_edit`` (``from complexface.api import measure``
also works).
"""

from __future__ import annotations

from importlib import import_module

_API = {"load_face": "load_face", "edit": "edit", "measure_edit": "measure", "recipe_for": "recipe_for",
        "read_recipe_file": "read_recipe_file"}

__all__ = list(_API)


def __getattr__(name: str) -> object:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module("complexface.api"), _API[name])

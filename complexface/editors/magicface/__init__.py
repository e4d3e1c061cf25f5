"""MagicFace (Wei et al., 2025) reimplemented on stock diffusers: pipeline, loading, editor.

The heavy parts (diffusers, transformers) load on first use of an export, so importing
MagicFaceWeightsError, e.g. to report user errors, costs nothing.
"""

from __future__ import annotations

from importlib import import_module

from complexface.errors import UserError


class MagicFaceWeightsError(UserError, FileNotFoundError):
    """MagicFace or SD 1.5 weights are missing, unreadable or do not match the architecture."""


_LAZY = {"MagicFaceEditor": "editor", "FaceCondition": "pipeline", "MagicFaceOutput": "pipeline",
         "MagicFacePipeline": "pipeline", "MagicFaceStep": "pipeline", "au_matrix": "pipeline"}

__all__ = ["MagicFaceWeightsError", *_LAZY]


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)

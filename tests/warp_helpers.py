"""Helpers shared by the warp editor's tests."""

from __future__ import annotations

import warnings

import cv2
import numpy as np

from complexface.au import AUEdit


def edit(**values: float) -> AUEdit:
    """An AU edit, beyond the safe range too (its warning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AUEdit(values)


def luma(image: np.ndarray) -> np.ndarray:
    """An RGB crop's luminance as floats."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(float)

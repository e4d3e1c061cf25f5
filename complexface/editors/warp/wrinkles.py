"""Soft wrinkle shading drawn on the source from landmarks (AU4 furrows, AU6 crow's feet, AU9 nose-bridge
lines, AU12 nasolabial fold), so the warp carries it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from complexface.au import BILATERAL, AUEdit
from complexface.editors.warp.geometry import LIP_CORNER, NOSE_WING, SIDES, Geometry

WRINKLE_DEPTH = 0.22
"""Darkening at the centre of a wrinkle at intensity 5 (multiplicative)."""


def _curve(points: Sequence[Sequence[float]], n: int = 48) -> np.ndarray:
    """Quadratic Bezier through three face-frame control points (the middle one is passed through)."""
    p0, p1, p2 = (np.asarray(p, float) for p in points)
    control = 2 * p1 - (p0 + p2) / 2
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * control + t**2 * p2


def _wrinkle_curves(g: Geometry) -> dict[str, list[tuple[np.ndarray, float, float]]]:
    """Per AU, wrinkle centre lines (face units) with width (face units) and relative depth."""
    mid = g.at((168, 6))[0]
    root, bridge = g.at(168)[1], g.at(6)[1]
    curves: dict[str, list[tuple[np.ndarray, float, float]]] = {
        "AU4": [(_curve([(mid + s * 0.05, -0.1), (mid + s * 0.065, -0.24), (mid + s * 0.09, -0.36)]), 0.016, 0.9)
                for s in SIDES],
        "AU9": [(_curve([(mid - 0.06, root + 0.035), (mid, root + 0.02), (mid + 0.06, root + 0.035)]), 0.012, 1.2),
                (_curve([(mid - 0.075, root + 0.1), (mid, root + 0.085), (mid + 0.075, root + 0.1)]), 0.012, 1.1)],
        "AU6": [],
        "AU12": [],
    }
    for side, corner, wing, eye in zip(SIDES, LIP_CORNER, NOSE_WING, (33, 263)):
        side_u = mid + side * 0.075
        bunny = [(side_u, bridge), (side_u + side * 0.03, bridge + 0.05), (side_u + side * 0.07, bridge + 0.09)]
        curves["AU9"].append((_curve(bunny), 0.012, 1.0))
        cu, cv = g.at(eye)
        for angle, depth in ((-0.55, 0.7), (-0.05, 1.0), (0.45, 0.8)):
            direction = np.array([side * math.cos(angle), math.sin(angle)])
            start = np.array([cu, cv]) + 0.085 * direction
            bend = np.array([0.0, 0.012])
            crow = [start, start + 0.07 * direction + bend, start + 0.15 * direction]
            curves["AU6"].append((_curve(crow), 0.011, depth))
        wu, wv = g.at(wing[:2])
        lu, lv = g.at(corner)
        fold = [(wu + side * 0.04, wv + 0.0), (wu + side * 0.1, (wv + lv) / 2), (lu + side * 0.1, lv + 0.06)]
        curves["AU12"].append((_curve(fold), 0.02, 1.0))
    return curves


def _stroke(canvas: np.ndarray, xy: np.ndarray, width: float, depth: float) -> None:
    """Add a soft tapered line (Gaussian cross-section ``width`` px) of peak ``depth`` to ``canvas``."""
    length = float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())
    n = max(2, int(length * 2))
    t = np.linspace(0, 1, len(xy))
    dense = np.stack([np.interp(np.linspace(0, 1, n), t, xy[:, k]) for k in range(2)], -1)
    taper = np.sin(np.pi * np.linspace(0, 1, n)) ** 1.2
    h, w = canvas.shape
    px = np.clip(np.round(dense).astype(int), 0, [w - 1, h - 1])
    line = np.zeros_like(canvas)
    np.add.at(line, (px[:, 1], px[:, 0]), taper * depth * math.sqrt(2 * math.pi) * width * length / n)
    canvas += cv2.GaussianBlur(line, (0, 0), width)


def _lit_side(xy: np.ndarray) -> np.ndarray:
    """Unit normal of a stroke pointing to its upper side (where a fold catches light from above)."""
    direction = xy[-1] - xy[0]
    normal = np.array([direction[1], -direction[0]]) / max(float(np.linalg.norm(direction)), 1e-6)
    return normal if normal[1] <= 0 else -normal


@dataclass
class Wrinkles:
    """Per-AU wrinkle shading maps (darkening at intensity 5) on pixel blocks of the source crop."""

    maps: dict[str, tuple[tuple[slice, slice], np.ndarray]]

    @classmethod
    def of(cls, geometry: Geometry, size: int) -> Wrinkles:
        maps = {}
        for key, curves in _wrinkle_curves(geometry).items():
            canvas = np.zeros((size, size), np.float32)
            for curve, width, depth in curves:
                px_width = max(0.8, width * geometry.frame.unit)
                xy = geometry.frame.to_xy(curve)
                _stroke(canvas, xy, px_width, depth * WRINKLE_DEPTH)
                _stroke(canvas, xy + 1.7 * px_width * _lit_side(xy), px_width, -0.3 * depth * WRINKLE_DEPTH)
            rows, cols = np.nonzero(np.abs(canvas) > 1e-3)
            if rows.size:
                block = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
                maps[key] = (block, canvas[block])
        for key in [k for k in maps if k in BILATERAL]:
            block, shade = maps[key]
            ys, xs = np.mgrid[block]
            left = geometry.left_share(geometry.frame.to_uv(np.stack([xs, ys], -1).astype(float))[..., 0])
            maps[key + "L"], maps[key + "R"] = (block, shade * left), (block, shade * (1 - left))
        return cls(maps)

    def apply(self, image: np.ndarray, edit: AUEdit) -> np.ndarray:
        """The image with the edit's wrinkles shaded in, scaled by each AU's positive intensity
        (deepening no further beyond 6)."""
        active = [(k, min(v / 5.0, 1.2)) for k, v in edit.values.items() if v > 0 and k in self.maps]
        if not active:
            return image
        out = image.copy()
        for key, weight in active:
            block, shade = self.maps[key]
            factor = np.clip(1 - weight * shade, 0.4, 1.3)[..., None]
            out[block] = np.clip(out[block] * factor + 0.5, 0, 255).astype(np.uint8)
        return out

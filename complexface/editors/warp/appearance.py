"""Appearance of the AUs: soft luminance ratio maps drawn on the source from landmarks, so the warp carries them.

In the spirit of expression ratio images (Liu, Shan & Zhang 2001, "Expressive expression mapping with ratio
images", SIGGRAPH): an expression changes the skin's surface normals, hence its irradiance, while the albedo
stays; so the edit multiplies the source by a ratio ``1 - w * shade`` (``w`` = intensity / 5, capped) and keeps
the face's own colour, texture and lighting (a shadow on a dark patch darkens it by the same fraction).

Each AU is designed as a small change of skin relief in the face frame (``geometry``): creases (valleys along
curves: forehead lines, glabella furrows, crow's feet, the nasolabial fold, the infraorbital furrow), rolls and
bulges (the raised cheek, the lower-lid bulge, the bunched glabella, the chin boss) and, for AU17, the chin's
dimpling (a fixed band-pass relief). The relief is shaded two ways: cavities (relief below its local mean)
darken and the rims and apexes above it brighten (ambient occlusion), and slopes facing the light brighten
while slopes facing away darken (light from above, tilted to the side the face's own cheeks say it comes from).
Highlights stay within ``HIGHLIGHT`` and shadows within ``SHADOW`` (soft limits); creases are at least
``MIN_WIDTH`` face units wide (several pixels at 512), so no map has a hard line. Everything is gated to
the skin (the face's own skin colour) inside the landmarks' hull: hair, brows, eyes and background keep
their pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from complexface.au import BILATERAL, AUEdit
from complexface.editors.warp.geometry import (
    BROW,
    CHEEK,
    LIP_CORNER,
    LOWER_LID,
    NOSE_WING,
    SIDES,
    UPPER_LID,
    Geometry,
    smooth_interp,
    smoothstep,
)
from complexface.faces.align import face_core

HIGHLIGHT = 0.06
"""Largest brightening (ratio 1.06) of any edit."""
SHADOW = 0.4
"""Largest darkening (ratio 0.6) of any edit."""
MAX_WEIGHT = 1.2
"""Intensity weight cap (intensity / 5): the appearance deepens no further beyond 6."""
MIN_WIDTH = 0.016
"""Narrowest crease (Gaussian sigma, face units: about 2.5 px at 512)."""
CAVITY = 0.045
"""Scale (face units) of the local mean a cavity is measured against (ambient occlusion)."""
WARMTH = (0.8, 1.0, 1.15)
"""Share of a shade each RGB channel takes: light scattered in the skin reddens its shadows."""
TRIM = 3e-3
"""Shading below this (under a grey level) is left off, so each map's block stays small."""
SKIN_SCALE = 4
"""The skin gate is judged on the crop shrunk this many times (regions, not single hairs or pores)."""
SLOPE = 0.05
"""Face units per unit of relief in the directional term: its slopes are per ``SLOPE`` face units."""

@dataclass
class _Canvas:
    """One AU's relief under construction: a cavity-shaded layer and a light-shaded layer on the crop."""

    geometry: Geometry
    size: int

    def __post_init__(self) -> None:
        self.cavity = np.zeros((self.size, self.size), np.float32)
        self.light = np.zeros((self.size, self.size), np.float32)
        self.box = [self.size, self.size, 0, 0]  # y0, x0, y1, x1 of everything drawn

    def _block(self, xy: np.ndarray, reach: float) -> tuple[slice, slice] | None:
        lo = np.floor(xy.min(axis=0) - reach).astype(int)
        hi = np.ceil(xy.max(axis=0) + reach).astype(int) + 1
        x0, y0 = np.maximum(lo, 0)
        x1, y1 = np.minimum(hi, self.size)
        if x1 <= x0 or y1 <= y0:
            return None
        b = self.box
        self.box = [min(b[0], y0), min(b[1], x0), max(b[2], y1), max(b[3], x1)]
        return slice(y0, y1), slice(x0, x1)

    def _add(self, block: tuple[slice, slice], height: np.ndarray, cavity: float, light: float) -> None:
        self.cavity[block] += cavity * height
        self.light[block] += light * height

    def curve(self, points: Sequence[Sequence[float]], width: float, height: float, *, other_width: float | None = None,
              toward: Sequence[float] = (0.0, -1.0), profile: Sequence[float] = (0.0, 1.0, 1.0, 0.0),
              along_u: Callable[[np.ndarray], np.ndarray] | None = None, cavity: float = 1.0,
              light: float = 1.0) -> None:
        """A crease (``height`` < 0) or a roll (> 0) along a smooth curve through face-frame ``points``.

        Gaussian cross-section of sigma ``width`` face units (``other_width`` on the side away from the
        face-frame direction ``toward``: an asymmetric fold); ``height`` is scaled along the curve by
        ``profile``, a smooth interpolation through equally spaced values from start to end (0 at both: a crease
        fades out rather than ending in a cap), and by ``along_u`` of the face-frame u of the nearest curve
        point. ``cavity`` and ``light`` weigh the two shadings.
        """
        g = self.geometry
        unit = g.frame.unit
        width = max(width, MIN_WIDTH)
        other = max(other_width or width, MIN_WIDTH)
        line = _dense(g.frame.to_xy(_spline(np.asarray(points, float))))
        reach = 3.5 * max(width, other) * unit
        block = self._block(line, reach)
        if block is None:
            return
        rows, cols = block
        near, dist, side, t = _nearest((cols.start, rows.start), (rows.stop - rows.start, cols.stop - cols.start),
                                       line, reach)
        toward_px = g.frame.to_xy(np.asarray(toward, float)) - g.frame.origin
        direction = np.diff(line, axis=0).mean(axis=0)
        facing = np.sign(direction[0] * toward_px[1] - direction[1] * toward_px[0]) or 1.0
        sigma = np.where(side * facing >= 0, width, other) * unit
        along = smooth_interp(t, np.linspace(0, 1, len(profile)), np.asarray(profile, float))
        if along_u is not None:
            along = along * along_u(np.interp(t, _arc(line), g.frame.to_uv(line)[:, 0]))
        values = height * np.exp(-0.5 * (dist / sigma).astype(np.float32) ** 2) * along.astype(np.float32)
        self.cavity[block][near] += cavity * values
        self.light[block][near] += light * values

    def bump(self, center: Sequence[float], radii: tuple[float, float], height: float, *, below: float | None = None,
             cavity: float = 1.0, light: float = 1.0) -> None:
        """An elliptic Gaussian bulge (``height`` > 0) or hollow with face-frame ``radii`` (sigma along u and v;
        ``below``: sigma along v below the centre, so a bulge can fall off gently under its apex)."""
        g = self.geometry
        center = np.asarray(center, float)
        reach = 3.2 * max(*radii, below or 0.0) * g.frame.unit
        block = self._block(g.frame.to_xy(center)[None], reach)
        if block is None:
            return
        du, dv = self._uv(block, center)
        rv = np.where(dv > 0, below or radii[1], radii[1])
        self._add(block, height * np.exp(-0.5 * ((du / radii[0]) ** 2 + (dv / rv) ** 2)), cavity, light)

    def texture(self, center: Sequence[float], radii: tuple[float, float], height: float, grain: float,
                seed: int, *, cavity: float = 1.0, light: float = 1.0) -> None:
        """Band-pass relief of feature size ``grain`` face units in a soft ellipse: dimpled skin."""
        g = self.geometry
        center = np.asarray(center, float)
        block = self._block(g.frame.to_xy(center)[None], 2.5 * max(radii) * g.frame.unit)
        if block is None:
            return
        du, dv = self._uv(block, center)
        sigma = grain * g.frame.unit
        noise = np.random.default_rng(seed).standard_normal(du.shape).astype(np.float32)
        fine = cv2.GaussianBlur(noise, (0, 0), sigma)
        band = fine - cv2.GaussianBlur(fine, (0, 0), 2.5 * sigma)
        band /= max(float(band.std()), 1e-6)
        window = np.exp(-0.5 * ((du / radii[0]) ** 2 + (dv / radii[1]) ** 2) ** 2)
        self._add(block, height * band * window, cavity, light)

    def _uv(self, block: tuple[slice, slice], center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ys, xs = np.mgrid[block]
        uv = self.geometry.frame.to_uv(np.stack([xs, ys], -1).astype(np.float64))
        return uv[..., 0] - center[0], uv[..., 1] - center[1]

    def shade(self, light_dir: np.ndarray, gate: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """The darkening map (negative: brightening) at intensity 5 on the pixel block it covers."""
        y0, x0, y1, x1 = self.box
        if y1 <= y0:
            return None
        unit = self.geometry.frame.unit
        pad = int(3 * CAVITY * unit) + 2
        y0, x0, y1, x1 = max(0, y0 - pad), max(0, x0 - pad), min(self.size, y1 + pad), min(self.size, x1 + pad)
        cavity = self.cavity[y0:y1, x0:x1]
        light = self.light[y0:y1, x0:x1]
        shade = cv2.GaussianBlur(cavity, (0, 0), CAVITY * unit) - cavity
        gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
        gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
        shade += SLOPE * unit * (gx * light_dir[0] + gy * light_dir[1])
        shade = np.where(shade > 0, SHADOW * np.tanh(shade / SHADOW), HIGHLIGHT * np.tanh(shade / HIGHLIGHT))
        shade = (shade * gate[y0:y1, x0:x1]).astype(np.float32)
        return _trim((slice(y0, y1), slice(x0, x1)), shade)


def _trim(block: tuple[slice, slice], shade: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The map cut to the block where it reaches ``TRIM`` (None where it never does)."""
    rows, cols = np.nonzero(np.abs(shade) > TRIM)
    if not rows.size:
        return None
    y0, x0 = block[0].start, block[1].start
    inner = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    return ((slice(y0 + inner[0].start, y0 + inner[0].stop), slice(x0 + inner[1].start, x0 + inner[1].stop)),
            np.ascontiguousarray(shade[inner]))


def _spline(points: np.ndarray, per_span: int = 24) -> np.ndarray:
    """Dense Catmull-Rom curve through the points (ends extended linearly)."""
    if len(points) == 2:
        return points[0] + np.linspace(0, 1, per_span)[:, None] * (points[1] - points[0])
    p = np.concatenate([[2 * points[0] - points[1]], points, [2 * points[-1] - points[-2]]])
    t = np.linspace(0, 1, per_span, endpoint=False)[:, None]
    spans = []
    for k in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[k - 1], p[k], p[k + 1], p[k + 2]
        spans.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                            + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    return np.concatenate([*spans, points[-1:]])


def _dense(line: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """The polyline resampled every ``spacing`` pixels of arc length or less."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    at = np.linspace(0, arc[-1], max(2, int(np.ceil(arc[-1] / spacing)) + 1))
    return np.stack([np.interp(at, arc, line[:, k]) for k in range(2)], -1)


def _arc(line: np.ndarray) -> np.ndarray:
    """Arc-length fraction at each vertex of a polyline."""
    start = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    return start / max(start[-1], 1e-9)


def _nearest(xy0: tuple[int, int], shape: tuple[int, int], line: np.ndarray, reach: float
             ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of the block at ``xy0`` (x, y) of ``shape`` within ``reach`` of a densely sampled polyline (row
    and column indices), their distance to it, the side they lie on (+1 left of the direction of travel in image
    coordinates, -1 right) and the arc-length fraction of their nearest point. The nearest vertex comes from a
    labelled distance transform (approximate), refined by walking along the polyline to the segment the point
    projects onto (the curves are smooth and the reach is short), which gives the exact distance."""
    local = line - np.asarray(xy0, float)
    seeds = np.round(local).astype(int)
    keep = (seeds[:, 0] >= 0) & (seeds[:, 0] < shape[1]) & (seeds[:, 1] >= 0) & (seeds[:, 1] < shape[0])
    free = np.ones(shape, np.uint8)
    free[seeds[keep, 1], seeds[keep, 0]] = 0
    approx, labels = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    vertex = np.zeros(labels.max() + 1, int)
    vertex[labels[seeds[keep, 1], seeds[keep, 0]]] = np.nonzero(keep)[0]
    rows, cols = np.nonzero(approx < reach + 1.5)
    last = len(local) - 2
    k = np.minimum(vertex[labels[rows, cols]], last)
    # _dense resamples evenly: every segment has the same length, so the arc fraction is (k + s) / segments
    start = local[:-1].astype(np.float32)
    along = (local[1:] - local[:-1]).astype(np.float32)
    along /= max(float((along**2).sum(axis=1).mean()), 1e-12)  # direction / length: projections in segments
    xs, ys = cols.astype(np.float32), rows.astype(np.float32)
    for _ in range(6):  # walk along the polyline to the segment the point projects onto
        s = (xs - start[k, 0]) * along[k, 0] + (ys - start[k, 1]) * along[k, 1]
        moved = np.clip(k + np.floor(s).astype(int), 0, last)
        if np.array_equal(moved, k):
            break
        k = moved
    px, py = xs - start[k, 0], ys - start[k, 1]
    s = np.clip(px * along[k, 0] + py * along[k, 1], 0, 1)
    bx, by = local[k + 1, 0] - local[k, 0], local[k + 1, 1] - local[k, 1]
    dx, dy = px - s * bx, py - s * by
    side = np.where(bx * py - by * px >= 0, 1.0, -1.0)
    return (rows, cols), np.sqrt(dx * dx + dy * dy), side, (k + s) / (last + 1)


# ---------------------------------------------------------------- the AU designs (face units, heights at intensity 5)


def _lid(g: Geometry, ids: Sequence[int], drop: Sequence[float]) -> np.ndarray:
    """A lid's landmarks (outer corner first) moved ``drop`` face units down, one value per landmark."""
    return g.uv[list(ids)] + np.stack([np.zeros(len(ids)), np.asarray(drop, float)], -1)


def _au6(c: _Canvas, g: Geometry) -> None:
    """Cheek raiser: the raised cheek (highlight on its apex, shadow below), the lower-lid bulge under the
    lashes, the infraorbital furrow below it and crow's feet fanning from the outer eye corner."""
    for side, cheek, lid in zip(SIDES, CHEEK, LOWER_LID):
        scale = g.side_scale[side]
        apex = g.at(cheek) + (0.0, -0.03)
        c.bump(apex, (0.17 * scale, 0.12), 0.24, below=0.2, cavity=0.15, light=1.0)
        c.curve(_lid(g, lid[:-1], [0.02, 0.035, 0.04, 0.045, 0.045, 0.04, 0.035, 0.03]), 0.022, 0.15,
                profile=(0.0, 1.0, 1.0, 0.6, 0.0), light=0.7)
        furrow = _lid(g, lid, [0.07, 0.095, 0.11, 0.12, 0.12, 0.115, 0.105, 0.095, 0.08])
        furrow[0] += (side * 0.03 * scale, 0.01)
        c.curve(furrow, 0.024, -0.3, other_width=0.04, profile=(0.0, 0.9, 1.0, 0.7, 0.0), light=0.6)
        corner = g.uv[lid[0]]
        for angle, length, depth in ((-0.55, 0.12, 0.7), (-0.15, 0.16, 1.0), (0.25, 0.15, 0.9), (0.6, 0.12, 0.6)):
            out = np.array([side * scale * math.cos(angle), math.sin(angle)])
            start = corner + 0.055 * out
            bend = np.array([0.0, 0.01 + 0.015 * angle])
            c.curve([start, start + 0.5 * length * out + bend, start + length * out + 2.5 * bend], 0.018,
                    -0.17 * depth, profile=(0.0, 1.0, 0.8, 0.0), light=0.3)


def _au12(c: _Canvas, g: Geometry) -> None:
    """Lip corner puller: the deepened nasolabial fold from the nose wing to beyond the lip corner (a
    crease sharp on the cheek side, its shadow soft towards the lip, the cheek's roll lit above it), the
    lip corners' small pits and a lift of the cheek apex."""
    for side, wing, corner, cheek in zip(SIDES, NOSE_WING, LIP_CORNER, CHEEK):
        scale = g.side_scale[side]
        wu, wv = g.at(wing)
        cu, cv = g.at(corner)
        fold = np.array([(wu + side * 0.04 * scale, wv - 0.1), (cu + side * 0.1 * scale, cv - 0.2),
                         (cu + side * 0.13 * scale, cv - 0.02), (cu + side * 0.11 * scale, cv + 0.14)])
        c.curve(fold, 0.022, -0.3, other_width=0.05, toward=(side, -0.3), profile=(0.0, 1.0, 1.0, 0.7, 0.0),
                light=0.5)
        roll = fold + (side * 0.06 * scale, -0.02)
        c.curve(roll, 0.05, 0.4, profile=(0.0, 1.0, 1.0, 0.5, 0.0), cavity=0.5, light=1.0)
        c.bump((cu + side * 0.04 * scale, cv + 0.005), (0.03 * scale, 0.045), -0.1, cavity=0.6)
        c.bump(g.at(cheek) + (0.0, -0.02), (0.15 * scale, 0.1), 0.12, below=0.14, cavity=0.3, light=1.0)


def _forehead(g: Geometry, lines: int = 3) -> list[np.ndarray]:
    """Forehead crease centre lines (face units, image-left to image-right) above the brows, following
    their curve (less so higher up), a little wavy."""
    brow = np.concatenate([g.uv[list(BROW[0])], g.uv[list(BROW[1])]])
    order = np.argsort(brow[:, 0])
    bu, bv = brow[order, 0], brow[order, 1]
    u = np.linspace(bu[0] + 0.05, bu[-1] - 0.05, 13)
    top = np.interp(u, bu, bv)
    out = []
    for k in range(lines):
        follow = 0.6 - 0.15 * k
        v = top.mean() - 0.13 - 0.095 * k + follow * (top - top.mean())
        v = v + 0.006 * np.sin(2 * np.pi * u / 0.45 + 1.7 * k)
        out.append(np.stack([u, v], -1))
    return out


_LINE_ENDS = (0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0)
"""Forehead creases fade in and out over their first and last sixth."""


def _line_depth(u: np.ndarray, k: int) -> np.ndarray:
    """Irregular depth along forehead line ``k``: lines deepen and fade, and are shallower higher up."""
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * u / 0.37 + 2.3 * k) * np.cos(2 * np.pi * u / 0.23 + 0.9 * k)
    return (1 - 0.2 * k) * (0.35 + 0.65 * wave)


def _au1(c: _Canvas, g: Geometry) -> None:
    """Inner brow raiser: horizontal forehead creases over the central forehead."""
    mid = g.uv[168, 0]
    for k, line in enumerate(_forehead(g)):
        c.curve(line, 0.02, -0.2, profile=_LINE_ENDS,
                along_u=lambda u, k=k: _central(u - mid) * _line_depth(u, k), light=0.3)


def _au2(c: _Canvas, g: Geometry) -> None:
    """Outer brow raiser: the same creases over the lateral forehead (with AU1 they run across)."""
    mid = g.uv[168, 0]
    for k, line in enumerate(_forehead(g)):
        c.curve(line, 0.02, -0.2, profile=_LINE_ENDS,
                along_u=lambda u, k=k: (1 - _central(u - mid)) * _line_depth(u, k), light=0.3)


def _central(du: np.ndarray) -> np.ndarray:
    """AU1's share of the forehead creases at ``du`` from the midline (the rest is AU2's)."""
    return 1 - smoothstep((np.abs(du) - 0.2) / 0.3)


def _au4(c: _Canvas, g: Geometry) -> None:
    """Brow lowerer: vertical glabella furrows beside the skin bunched between the brows, the skin bunched above
    the inner brows, and the brow-lid skin folding down over the upper lid under the overhanging brow (its shadow
    on the lid, the fold's roll lit above it)."""
    mid, root = g.uv[168]
    # the bunched skin sits between the brow heads, clear of the nose root: a bulge's shading there reads to the
    # measurer's optical flow as the nasion sliding down (a shortened nose that the warp does not make)
    c.bump((mid, root - 0.26), (0.05, 0.07), 0.3, cavity=0.4)
    for side, brow, lid in zip(SIDES, BROW, UPPER_LID):
        c.curve([(mid + side * 0.055, root - 0.07), (mid + side * 0.062, root - 0.2),
                 (mid + side * 0.085, root - 0.37)], 0.025, -0.32, other_width=0.036, toward=(side, 0.0),
                profile=(0.0, 0.7, 1.0, 0.9, 0.4, 0.0), light=0.2)
        c.curve([(mid + side * 0.13, root - 0.14), (mid + side * 0.14, root - 0.24)], 0.026, -0.05,
                profile=(0.0, 1.0, 0.0), light=0.15)
        inner = g.uv[brow[-1]]
        c.bump(inner + (side * 0.02, -0.02), (0.08, 0.06), 0.3, cavity=0.5)
        upper = _lid(g, lid, np.full(len(lid), -0.11))
        c.curve(upper, 0.04, 0.26, profile=(0.0, 0.5, 1.0, 1.0, 0.3), cavity=0.3, light=1.0)
        c.curve(_lid(g, lid, np.full(len(lid), -0.065)), 0.028, -0.2, profile=(0.0, 0.7, 1.0, 0.8, 0.0))


def _au9(c: _Canvas, g: Geometry) -> None:
    """Nose wrinkler: transverse creases across the nose root with the skin bunched between them, oblique lines on
    the nose's sides and the top of the nasolabial furrow."""
    mid, root = g.uv[168]
    bridge = g.uv[6, 1]
    for dv, half, depth in ((0.0, 0.08, 0.12), (0.045, 0.1, 0.18), (0.1, 0.1, 0.15)):
        c.curve([(mid - half, root + dv + 0.015), (mid, root + dv), (mid + half, root + dv + 0.015)], 0.017,
                -depth, profile=(0.0, 1.0, 1.0, 0.0), light=0.3)
    c.bump((mid, root + 0.05), (0.07, 0.06), 0.12, cavity=0.3)
    for side, wing in zip(SIDES, NOSE_WING):
        u0 = mid + side * 0.07
        c.curve([(u0, bridge), (u0 + side * 0.035, bridge + 0.055), (u0 + side * 0.075, bridge + 0.1)], 0.02,
                -0.1, profile=(0.0, 1.0, 0.8, 0.0), light=0.3)
        wu, wv = g.at(wing)
        c.curve([(wu + side * 0.03, wv - 0.12), (wu + side * 0.06, wv - 0.04), (wu + side * 0.08, wv + 0.05)],
                0.018, -0.1, other_width=0.03, toward=(side, -0.3), profile=(0.0, 1.0, 0.6, 0.0))


def _au15(c: _Canvas, g: Geometry) -> None:
    """Lip corner depressor: the shadow of the lip corners' depression below and lateral to them, with the
    skin pouching beside it."""
    for side, corner in zip(SIDES, LIP_CORNER):
        scale = g.side_scale[side]
        cu, cv = g.uv[corner]
        c.curve([(cu + side * 0.01 * scale, cv - 0.01), (cu + side * 0.06 * scale, cv + 0.1),
                 (cu + side * 0.075 * scale, cv + 0.19)], 0.022, -0.38, other_width=0.04, toward=(side, 0.0),
                profile=(0.0, 1.0, 0.8, 0.0), light=0.5)
        c.bump((cu + side * 0.12 * scale, cv + 0.07), (0.06 * scale, 0.07), 0.25, cavity=0.4)
        c.bump((cu + side * 0.035 * scale, cv + 0.05), (0.035, 0.045), -0.12, cavity=0.3)


def _au17(c: _Canvas, g: Geometry) -> None:
    """Chin raiser: the chin boss pushed up (lit on top, its dimpled orange-peel surface) and the deepened
    mentolabial sulcus under the lower lip."""
    lu = g.uv[17, 0]
    sulcus = g.uv[18, 1] + 0.01
    boss = (g.uv[200] + g.uv[199]) / 2
    c.bump(boss, (0.2, 0.12), 0.35, cavity=0.3)
    c.texture(boss + (0.0, -0.01), (0.15, 0.09), 0.008, 0.01, seed=17, cavity=0.5, light=1.0)
    c.curve([(lu - 0.2, sulcus - 0.05), (lu, sulcus), (lu + 0.2, sulcus - 0.05)], 0.022, -0.24, other_width=0.035,
            toward=(0.0, -1.0), profile=(0.0, 1.0, 1.0, 0.0), light=0.6)


DESIGNS: dict[str, Callable[[_Canvas, Geometry], None]] = {
    "AU1": _au1, "AU2": _au2, "AU4": _au4, "AU6": _au6, "AU9": _au9, "AU12": _au12, "AU15": _au15, "AU17": _au17,
}
"""Each AU's relief; the others (AU5, AU20, AU25, AU26) change the geometry only."""


# ---------------------------------------------------------------- the face's own skin and light


def _skin(image: np.ndarray, g: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """(gate, light): a soft 0-1 map of the face's skin inside the landmarks' hull and the in-plane direction
    (crop pixels) towards the light, from above, tilted to the brighter cheek.

    Skin is judged by colour (and loosely by brightness) against the face's own cheeks, nose and chin, on a
    quarter-resolution image: regions of hair, brows, eyes and lips fall out, single hairs and pores do not
    (a fold's shadow falls on stubble too).
    """
    size = image.shape[0]
    small = max(8, size // SKIN_SCALE)
    scale = small / size
    unit = g.frame.unit * scale
    ycc = cv2.cvtColor(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2YCrCb)
    ycc = ycc.astype(np.float32)
    mid = g.uv[168, 0]
    patches = {side: [(mid + side * 0.55, 0.42), (mid + side * 0.45, 0.55)] for side in SIDES}
    patches[0] = [(mid, 0.3), (g.uv[200, 0], g.uv[200, 1] + 0.05)]
    r = max(1, round(0.06 * unit))
    samples, luma = [], {}
    for key, centers in patches.items():
        pixels = []
        for x, y in g.frame.to_xy(np.array(centers)) * scale:
            x, y = int(np.clip(x, r, small - r - 1)), int(np.clip(y, r, small - r - 1))
            pixels.append(ycc[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 3))
        samples.append(np.concatenate(pixels))
        luma[key] = float(np.median(samples[-1][:, 0]))
    samples = np.concatenate(samples)
    center = np.median(samples, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(samples - center), axis=0), (10.0, 2.5, 2.5))
    spread[0] *= 4.0  # brightness varies with the face's own shading: judge skin mostly by its colour
    score = np.sqrt((((ycc - center) / spread) ** 2).sum(-1))
    skin = 1 - smoothstep((score - 3.0) / 3.0)
    core = face_core(g.landmarks, size, drop=0.0, scale=scale)
    inside = cv2.distanceTransform(core, cv2.DIST_L2, 5) - cv2.distanceTransform(1 - core, cv2.DIST_L2, 5)
    hull = smoothstep((inside + 0.01 * unit) / (0.06 * unit))
    gate = cv2.GaussianBlur((skin * hull).astype(np.float32), (0, 0), 0.025 * unit) * (hull > 0)
    gate = cv2.resize(gate, (size, size), interpolation=cv2.INTER_LINEAR)
    tilt = float(np.clip(1.5 * (luma[1] - luma[-1]) / max(luma[1] + luma[-1], 1.0), -0.4, 0.4))
    direction = np.array([tilt, -1.0]) / math.hypot(tilt, 1.0)
    return gate, direction[0] * g.frame.ex + direction[1] * g.frame.ey


# ---------------------------------------------------------------- the maps


@dataclass
class Appearance:
    """Per-AU shading maps (darkening at intensity 5, negative: brightening) on pixel blocks of the source crop;
    one-sided variants (``AU12L``, ``AU12R``) keep one side of the midline."""

    maps: dict[str, tuple[tuple[slice, slice], np.ndarray]]

    @classmethod
    def of(cls, image: np.ndarray, geometry: Geometry) -> Appearance:
        size = image.shape[0]
        gate, light = _skin(image, geometry)
        maps = {}
        for key, design in DESIGNS.items():
            canvas = _Canvas(geometry, size)
            design(canvas, geometry)
            shaded = canvas.shade(light, gate)
            if shaded is not None:
                maps[key] = shaded
        for key in [k for k in maps if k in BILATERAL]:
            block, shade = maps[key]
            frame = geometry.frame
            xs = np.arange(block[1].start, block[1].stop, dtype=np.float32)[None, :] - frame.origin[0]
            ys = np.arange(block[0].start, block[0].stop, dtype=np.float32)[:, None] - frame.origin[1]
            left = geometry.left_share((xs * frame.ex[0] + ys * frame.ex[1]) / frame.unit)
            for side, share in (("L", left), ("R", 1 - left)):
                trimmed = _trim(block, (shade * share).astype(np.float32))
                if trimmed is not None:
                    maps[key + side] = trimmed
        return cls(maps)

    def shade(self, edit: AUEdit) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """The edit's darkening (negative: brightening) on the pixel block it covers: ``sum(w * shade)`` over its
        AUs of positive intensity, ``w`` = intensity / 5 up to ``MAX_WEIGHT``, within the highlight and shadow
        limits."""
        active = [(self.maps[k], min(v / 5.0, MAX_WEIGHT)) for k, v in edit.values.items() if v > 0 and k in self.maps]
        if not active:
            return None
        y0 = min(b[0].start for (b, _), _ in active)
        y1 = max(b[0].stop for (b, _), _ in active)
        x0 = min(b[1].start for (b, _), _ in active)
        x1 = max(b[1].stop for (b, _), _ in active)
        total = np.zeros((y1 - y0, x1 - x0), np.float32)
        for ((rows, cols), shade), weight in active:
            view = total[rows.start - y0:rows.stop - y0, cols.start - x0:cols.stop - x0]
            view += np.float32(weight) * shade
        np.clip(total, -HIGHLIGHT, SHADOW, out=total)
        return (slice(y0, y1), slice(x0, x1)), total

    def apply(self, image: np.ndarray, edit: AUEdit) -> np.ndarray:
        """The image with the edit's appearance shaded in (the image itself when the edit has none): each channel
        times ``1 - WARMTH[c] * shade``."""
        shaded = self.shade(edit)
        if shaded is None:
            return image
        block, shade = shaded
        ratio = cv2.merge([1 - np.float32(share) * shade for share in WARMTH])
        out = image.copy()
        out[block] = cv2.multiply(out[block].astype(np.float32), ratio, dtype=cv2.CV_8U)
        return out

"""The eyeball stays rigid: the lids move over it, the iris is never stretched, and an opening lid shows the
eyeball its old position hid (sclera above the iris, the iris's own hidden top) under a soft lid shadow."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from complexface.editors.warp.geometry import LOWER_LID, UPPER_LID
from complexface.faces.align import AlignedFace
from complexface.faces.landmarks import IRIS_CENTERS

INSET = 0.5
"""How far inside the lid landmarks' curves the eyeball begins (px): the landmarks sit on the lid margin."""
FEATHER = 1.2
"""Width of the soft edge where a lid meets the eyeball (px)."""
BAND = 5.0
"""Depth (px) of the source eyeball under an opening lid that is drawn anew: the old lid margin's lashes and
deepest shadow would otherwise stay behind as a dark line across the eye."""
SOFT = 3.0
"""Width (px) of the blend between the source eyeball and the drawn one."""
MIN_OPENING = 0.02
"""Least median lid gap (face units) for an eye to be treated (a closed eye has no eyeball to keep)."""
ROOM = (0.16, 0.1)
"""How far (face units) an edit may move the upper lid up and the lower lid down within the eye's window."""


@dataclass
class Eye:
    """One eye: its window of the crop, the source eyeball and the eyeball as it looks where lids hide it,
    and the source lid curves (window rows per window column)."""

    origin: tuple[int, int]
    """(y0, x0) of the window in the crop."""
    upper: list[int]
    """Upper-lid landmark ids in order of x (the eye corners included)."""
    lower: list[int]
    source: np.ndarray
    fill: np.ndarray
    """(h, w, 3) float32: sclera (spread from its visible pixels below the upper lid's shadow band) and iris
    (its radial profile with some of its own texture), without the edited lid's shadow."""
    up: np.ndarray
    low: np.ndarray
    margin: np.ndarray
    """Per column, how far below the upper-lid landmarks' curve the eyeball begins (px; the lashes lie
    between; negative where the curve dips into the eyeball): ``up`` includes it."""
    shadow: tuple[float, float]
    """(depth, length px) of the upper lid's shadow on the eyeball: shade = 1 - depth exp(-d / length)."""
    iris: tuple[float, float, float]
    """(x, y, radius) of the iris in the window."""

    @classmethod
    def of(cls, face: AlignedFace, side: int, unit: float) -> Eye | None:
        """The eye on ``side`` (0: image-left), or None when it is (nearly) closed."""
        xy = face.landmarks.xy
        upper = sorted(UPPER_LID[side], key=lambda i: xy[i, 0])
        lower = sorted(LOWER_LID[side], key=lambda i: xy[i, 0])
        gap = np.interp(xy[upper, 0], xy[lower, 0], xy[lower, 1]) - xy[upper, 1]
        if np.median(gap[1:-1]) < MIN_OPENING * unit:
            return None
        size = face.size
        pts = xy[upper + lower]
        x0, x1 = int(max(pts[:, 0].min() - 3, 0)), int(min(pts[:, 0].max() + 4, size))
        y0 = int(max(pts[:, 1].min() - ROOM[0] * unit, 0))
        y1 = int(min(pts[:, 1].max() + ROOM[1] * unit + 1, size))
        source = face.image[y0:y1, x0:x1].astype(np.float32)
        cols = np.arange(x1 - x0, dtype=np.float32)
        up = np.interp(cols, xy[upper, 0] - x0, xy[upper, 1] - y0).astype(np.float32)
        low = np.interp(cols, xy[lower, 0] - x0, xy[lower, 1] - y0).astype(np.float32)
        centre = xy[IRIS_CENTERS[side]] - (x0, y0)
        ring = xy[IRIS_CENTERS[side] + 1:IRIS_CENTERS[side] + 5] - xy[IRIS_CENTERS[side]]
        rows = np.arange(y1 - y0, dtype=np.float32)[:, None]
        d_up, d_low = _depth(rows, up), _depth(rows, low, below=False)
        iris = _fit_iris(source, d_up, d_low, (*centre, float(np.linalg.norm(ring, axis=1).mean())))
        margin = _margin(source, up, low, unit)
        up = up + margin
        d_up = _depth(rows, up)
        shadow = _shadow(source, d_up, d_low, iris, unit)
        fill = _fill(source, d_up, d_low, iris, unit)
        return cls((y0, x0), upper, lower, source, fill, up, low, margin, shadow, iris)

    def __post_init__(self) -> None:
        """What ``paint`` reads on every edit: per-column slope factors of the lid curves, the source's depth
        under and over them, and the source lid's shade."""
        h, w = self.source.shape[:2]
        self._cols = np.arange(w, dtype=np.float32)
        self._rows = np.arange(h, dtype=np.float32)[:, None]
        self._across_up, self._across_low = _across(self.up), _across(self.low)
        self._s_up = (self._rows - self.up) * self._across_up
        self._s_low = (self.low - self._rows) * self._across_low
        depth, length = self.shadow
        self._shade = (1 - depth * np.exp(-np.maximum(self._s_up, 0) / length)).astype(np.float32)
        self._open = self.low - self.up > 2 * INSET

    def paint(self, out: np.ndarray, xy: np.ndarray) -> None:
        """Draw the rigid eyeball into ``out`` (in place) inside the lids at their edited positions ``xy``
        (the crop's landmarks moved by the edit)."""
        y0, x0 = self.origin
        up = _curve(self._cols, xy[self.upper] - (x0, y0)) + self.margin
        low = _curve(self._cols, xy[self.lower] - (x0, y0))
        cols = np.flatnonzero(self._open | (low - up > 2 * INSET))
        if cols.size == 0:
            return
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        up, low = up[c0:c1], low[c0:c1]
        src_up, src_low = self.up[c0:c1], self.low[c0:c1]
        r0 = max(int(min(up.min(), src_up.min())), 0)
        r1 = min(int(max(low.max(), src_low.max())) + 2, self.source.shape[0])
        if r0 >= r1:
            return
        rows, block = self._rows[r0:r1], (slice(r0, r1), slice(c0, c1))
        d_up = (rows - up) * self._across_up[c0:c1]
        d_low = (low - rows) * self._across_low[c0:c1]
        alpha = np.clip((np.minimum(d_up, d_low) - INSET) * (1 / FEATHER), 0, 1)
        # the source eyeball stays, less a band under a lid that opened (its old margin and deepest shadow)
        opened_up, opened_low = np.clip(src_up - up, 0, BAND), np.clip(low - src_low, 0, BAND)
        keep = np.minimum(self._s_up[block] - opened_up, self._s_low[block] - opened_low)
        keep = np.clip(keep * (1 / SOFT) + 1, 0, 1)
        depth, length = self.shadow
        shade = 1 - depth * np.exp(np.maximum(d_up, 0) * (-1 / length))
        kept = keep
        if (up > src_up + 0.05).any():
            # a lid that came down shades the eyeball it now borders; one that went up leaves the old shading,
            # which the drawn eyeball continues
            kept = keep * np.minimum(shade / self._shade[block], 1)
        eyeball = self.source[block] * kept[..., None] + self.fill[block] * ((1 - keep) * shade)[..., None]
        region = out[y0 + r0:y0 + r1, x0 + c0:x0 + c1]
        region[:] = cv2.blendLinear(eyeball, region.astype(np.float32), alpha, 1 - alpha) + 0.5


@dataclass
class Eyes:
    """Both eyes' rigid eyeballs (an eye closed in the source is left to the warp)."""

    eyes: list[Eye]
    ids: list[int]
    """The lid landmarks ``paint`` wants moved."""
    rest: np.ndarray
    """Their source positions."""

    @classmethod
    def of(cls, face: AlignedFace, unit: float) -> Eyes:
        eyes = [eye for side in (0, 1) if (eye := Eye.of(face, side, unit)) is not None]
        ids = sorted({i for eye in eyes for i in eye.upper + eye.lower})
        return cls(eyes, ids, face.landmarks.xy[ids])

    def paint(self, out: np.ndarray, moved: np.ndarray) -> None:
        """Draw the eyeballs into ``out`` (in place); ``moved``: the crop positions the edit gives the ``ids``
        landmarks."""
        if not self.eyes or np.abs(moved - self.rest).max() < 0.05:  # the lids did not move
            return
        xy = np.zeros((max(self.ids) + 1, 2))
        xy[self.ids] = moved
        for eye in self.eyes:
            eye.paint(out, xy)


def _curve(cols: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A lid's row at each column: the polyline through its landmarks (x, y), taken in order of x."""
    order = np.argsort(points[:, 0])
    return np.interp(cols, points[order, 0], points[order, 1]).astype(np.float32)


def _across(curve: np.ndarray) -> np.ndarray:
    """Per column, what a vertical distance from a curve (a row per column) is across it: cos of its slope."""
    slope = np.gradient(curve) if curve.size > 1 else np.zeros_like(curve)
    return (1.0 / np.sqrt(1.0 + slope * slope)).astype(np.float32)


def _depth(rows: np.ndarray, curve: np.ndarray, below: bool = True) -> np.ndarray:
    """Distance (px) of each pixel below (``below``) or above a lid curve given as a row per column, measured
    across the curve (its slope taken into account)."""
    return ((rows - curve) if below else (curve - rows)) * _across(curve)


def _luma(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


def _fit_iris(source: np.ndarray, d_up: np.ndarray, d_low: np.ndarray,
              guess: tuple[float, float, float]) -> tuple[float, float, float]:
    """The iris circle (x, y, r): the landmarks' circle with its centre's x and its radius refit to the
    limbus (the steepest dark-to-bright step) seen left and right of the iris in the visible rows."""
    cx, cy, r = guess
    luma = cv2.GaussianBlur(_luma(source), (0, 0), 0.8)
    grad = np.gradient(luma, axis=1)
    visible = (d_up > 2) & (d_low > 2)
    h, w = luma.shape
    centres, radii = [], []
    for y in range(max(int(cy - 0.5 * r), 0), min(int(cy + 0.5 * r) + 1, h)):
        dy = y - cy
        half = np.sqrt(max(r * r - dy * dy, 1.0))
        edges = []
        for sign in (-1, 1):
            lo, hi = cx + sign * 0.7 * half, cx + sign * 1.35 * half
            a, b = int(max(min(lo, hi), 0)), int(min(max(lo, hi), w - 1)) + 1
            if b - a < 3 or not visible[y, a:b].all():
                break
            step = sign * grad[y, a:b]  # iris (dark) to sclera (bright), outward
            k = int(np.argmax(step))
            if step[k] < 4:
                break
            edges.append(a + k)
        if len(edges) == 2:
            centres.append((edges[0] + edges[1]) / 2)
            radii.append(np.hypot((edges[1] - edges[0]) / 2, dy))
    if len(radii) >= 3:
        fit_x, fit_r = float(np.median(centres)), float(np.median(radii))
        if abs(fit_r - r) < 0.25 * r and abs(fit_x - cx) < 0.3 * r:
            return fit_x, cy, fit_r
    return cx, cy, r


def _margin(source: np.ndarray, up: np.ndarray, low: np.ndarray, unit: float) -> np.ndarray:
    """Per column, where the eyeball begins below the upper lid relative to the lid landmarks' curve (px):
    the first big dark-to-bright step down from the lashes near the curve (over the iris: to the iris or its
    catchlight), a pixel up to keep clear of the eyeball (lashes under the edge of the drawn eyeball show
    less than eyeball left on the lid, which the lid would carry away), smoothed along the lid."""
    luma = cv2.GaussianBlur(_luma(source), (0, 0), 0.7)
    step = np.diff(luma, axis=0)  # step[r]: from row r to row r + 1
    reach = max(3.0, 0.035 * unit)
    found = np.full(len(up), np.nan, np.float32)
    for c in range(len(up)):
        if low[c] - up[c] < 4:
            continue
        a = max(int(np.floor(up[c] - 3)), 0)
        b = min(int(np.ceil(min(up[c] + reach, (up[c] + low[c]) / 2))), step.shape[0])
        if b - a < 2:
            continue
        steps = step[a:b, c]
        if steps.max() >= 4:
            found[c] = a + int(np.argmax(steps >= 0.5 * steps.max())) + 1 - up[c] - 1.0
    known = np.flatnonzero(~np.isnan(found))
    if known.size < 3:
        return np.zeros_like(up)
    margin = np.interp(np.arange(len(up)), known, found[known]).astype(np.float32)
    if len(margin) >= 5:  # a smooth lid: no single column's step decides
        margin = cv2.GaussianBlur(cv2.medianBlur(margin[None], 5), (0, 0), 2.0, borderType=cv2.BORDER_REPLICATE)[0]
    return np.clip(margin, -3.0, reach).astype(np.float32)


def _shadow(source: np.ndarray, d_up: np.ndarray, d_low: np.ndarray, iris: tuple[float, float, float],
            unit: float) -> tuple[float, float]:
    """The upper lid's shadow on the sclera: (depth, length px) from how much darker the sclera is near the
    lid than further down; a typical shadow where too little sclera shows."""
    default = (0.25, 0.015 * unit)
    cx, cy, r = iris
    ys, xs = np.indices(d_up.shape)
    sclera = (np.hypot(xs - cx, ys - cy) > r + 1.5) & (d_low > 1.5) & (d_up > 0)
    luma = _luma(source)
    lit = sclera & (d_up > 0.035 * unit)
    if lit.sum() < 15 or (sclera & (d_up < 3)).sum() < 6:
        return default
    bright = float(np.percentile(luma[lit], 60))
    near = float(np.median(luma[sclera & (d_up >= 1) & (d_up < 2.5)])) / bright if (
        sclera & (d_up >= 1) & (d_up < 2.5)).sum() >= 4 else 1.0
    mid = float(np.median(luma[sclera & (d_up >= 2.5) & (d_up < 5)])) / bright if (
        sclera & (d_up >= 2.5) & (d_up < 5)).sum() >= 6 else 1.0
    # shade(d) = 1 - depth exp(-d / length) seen at d ~ 1.75 (near, past the lashes) and d ~ 3.75 (mid)
    if near >= 0.97 or mid <= near:
        return default
    length = 2.0 / np.log((1 - near) / max(1 - mid, 0.01))
    depth = (1 - near) * np.exp(1.75 / length)
    return float(np.clip(depth, 0.1, 0.35)), float(np.clip(length, 1.0, 0.02 * unit))


def _fill(source: np.ndarray, d_up: np.ndarray, d_low: np.ndarray, iris: tuple[float, float, float],
          unit: float) -> np.ndarray:
    """The eyeball where the lids hide it: the sclera spread from its visible pixels past the lid's shadow band
    (inpainting, at half size), and inside the iris circle the iris's radial profile with its mirrored texture."""
    cx, cy, r = iris
    ys, xs = np.indices(d_up.shape, dtype=np.float32)
    rho = np.hypot(xs - cx, ys - cy)
    visible = (d_up > 1.0) & (d_low > 1.0)
    luma = _luma(source)
    # sclera: the visible eyeball outside the iris, past the lid's deepest shadow, less its darkest, most
    # coloured part (lashes, lid skin), spread over the window from its edges (inpainting)
    sclera = visible & (rho > r + 1.5) & (d_low > 2) & (d_up >= 4)
    if sclera.sum() >= 10:
        whiteness = luma - 0.5 * (source.max(axis=2) - source.min(axis=2))
        sclera &= whiteness >= np.percentile(whiteness[sclera], 15)
    if sclera.sum() >= 8:
        # at half size: the fill is smooth, and inpainting nearly the whole window is the precompute's main cost
        h, w = sclera.shape
        half = (max(w // 2, 1), max(h // 2, 1))
        pixels = cv2.resize(np.clip(source + 0.5, 0, 255).astype(np.uint8), half, interpolation=cv2.INTER_AREA)
        known = cv2.resize(sclera.astype(np.float32), half, interpolation=cv2.INTER_AREA) > 0.99
        if known.sum() >= 4:
            small = cv2.inpaint(pixels, (~known).astype(np.uint8), 3, cv2.INPAINT_TELEA)
            white = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        else:
            white = cv2.inpaint(np.clip(source + 0.5, 0, 255).astype(np.uint8), (~sclera).astype(np.uint8), 4,
                                cv2.INPAINT_TELEA).astype(np.float32)
    else:
        skin = luma[(d_up < -3) | (d_low < -3)]
        light = float(np.clip(np.percentile(skin, 90) / 200.0, 0.45, 1.1)) if skin.size else 1.0
        white = np.broadcast_to(np.array([226.0, 220.0, 212.0], np.float32) * light, source.shape).copy()
    # iris: radial profile (median colour per 1 px ring) of its visible pixels
    inside = visible & (rho < r - 0.5)
    bins = np.minimum(rho.astype(int), int(r) + 1)
    profile = np.zeros((int(r) + 2, 3), np.float32)
    known = np.zeros(int(r) + 2, bool)
    for k in range(int(r) + 2):
        sel = inside & (bins == k)
        if sel.sum() >= 3:
            profile[k], known[k] = np.median(source[sel], axis=0), True
    if not known.any():
        return white.astype(np.float32)
    idx = np.arange(len(profile))
    for c in range(3):
        profile[:, c] = np.interp(idx, idx[known], profile[known, c])
    base = np.stack([np.interp(rho, idx + 0.5, profile[:, c]) for c in range(3)], -1).astype(np.float32)
    # its own texture: the pixel mirrored across the horizontal through the centre, where that one shows
    mirror_y = (2 * cy - ys).astype(np.float32)
    mirrored = cv2.remap(source, xs, mirror_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    clear = (inside & (d_up > 3) & (d_low > 3)).astype(np.float32)  # away from the lids' lashes and shadow
    seen = cv2.remap(clear, xs, mirror_y, cv2.INTER_LINEAR, borderValue=0) >= 0.99
    texture = np.clip(mirrored - base, -15, 8) * (0.8 * seen)[..., None]
    iris_color = base + texture  # the profile holds the darker limbus
    share = np.clip((r + 0.75 - rho) / 1.5, 0, 1)[..., None]
    return (iris_color * share + white * (1 - share)).astype(np.float32)

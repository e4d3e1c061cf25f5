"""Displacement maths on a coarse grid: one-to-one cap, inversion, upsampling and applying a warp.

A forward displacement ``disp`` is an (H, W, 2) float32 array of pixel vectors (x, y) at the nodes
of a coarse grid with spacing ``step`` px whose node (r, c) sits at the centre of the pixel block
``step * (r, c) .. step * (r, c) + step - 1``: the warp moves the point under node (r, c) by
``disp[r, c]``, and bilinearly in between. A window of the grid starts at grid cell ``origin`` =
(r0, c0) of the crop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import cv2
import numpy as np


def sample(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of a grid field at grid coordinates (replicating the border); fast, but ``cv2.remap``
    rounds positions to 1/32 of a cell (``sample_exact`` does not)."""
    return cv2.remap(field, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def sample_exact(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact bilinear samples of an (H, W) or (H, W, C) grid field at grid coordinates (replicating the border).

    Where a warp stretches skin open (a jaw drop moves points by several cells across one) ``sample``'s
    1/32-cell rounding leaves gaps of up to a pixel in the forward map, which no inversion can close.
    """
    h, w = field.shape[:2]
    x = np.clip(np.asarray(x, np.float32), 0, w - 1)
    y = np.clip(np.asarray(y, np.float32), 0, h - 1)
    x0 = np.minimum(x.astype(np.intp), max(w - 2, 0))
    y0 = np.minimum(y.astype(np.intp), max(h - 2, 0))
    fx, fy = x - x0, y - y0
    flat = field.reshape(h * w, -1)
    i00 = y0 * w + x0
    i01, i10 = i00 + min(1, w - 1), i00 + min(1, h - 1) * w
    corners = [np.take(flat, i, axis=0) for i in (i00, i01, i10, i10 + (i01 - i00))]
    fx, fy = fx[..., None], fy[..., None]
    out = (corners[0] * (1 - fx) + corners[1] * fx) * (1 - fy) + (corners[2] * (1 - fx) + corners[3] * fx) * fy
    return out.reshape(*x.shape, *field.shape[2:]).astype(field.dtype)


def cell_jacobian(disp: np.ndarray, step: int) -> np.ndarray:
    """Smallest Jacobian determinant of x -> x + disp in each grid cell.

    The map is bilinear inside a cell, where the determinant is affine, so its minimum over the
    cell is at a corner: the cross product of the two cell edges meeting there.
    """
    pos = disp / step + np.stack(np.meshgrid(np.arange(disp.shape[1]), np.arange(disp.shape[0])), -1)
    a, b, c, d = pos[:-1, :-1], pos[:-1, 1:], pos[1:, :-1], pos[1:, 1:]

    def cross(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]

    return np.minimum.reduce([cross(b - a, c - a), cross(b - a, d - b), cross(d - c, c - a), cross(d - c, d - b)])


def jacobian(disp: np.ndarray, step: int) -> np.ndarray:
    """(H, W, 4) Jacobian entries (dx/dx, dx/dy, dy/dx, dy/dy) of x -> x + disp at the grid nodes."""
    dxy, dxx = np.gradient(disp[..., 0], step)
    dyy, dyx = np.gradient(disp[..., 1], step)
    return np.dstack([1 + dxx, dxy, dyx, 1 + dyy]).astype(np.float32)


def cap(disp: np.ndarray, step: int, min_jacobian: float | np.ndarray) -> np.ndarray:
    """Attenuate the displacement smoothly around cells that would keep < ``min_jacobian`` of their area
    (a number, or one per grid cell: shape ``disp.shape[:2]`` less one row and column).

    Falls back to scaling the whole displacement down, which always succeeds (at 0 it is the
    identity), so the result is one-to-one.
    """
    for _ in range(6):
        det = cell_jacobian(disp, step)
        if (det >= min_jacobian).all():
            return disp
        target = min_jacobian + 0.05
        limit = np.where(det < target, (1 - target) / np.maximum(1 - det, 1e-6), 1.0).astype(np.float32)
        node = np.ones(disp.shape[:2], np.float32)
        for dy in (0, 1):
            for dx in (0, 1):
                view = node[dy:dy + limit.shape[0], dx:dx + limit.shape[1]]
                np.minimum(view, limit, out=view)
        alpha = cv2.GaussianBlur(cv2.erode(node, np.ones((9, 9), np.uint8)), (0, 0), 3.0)
        disp = disp * alpha[..., None]
    for scale in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0):
        if (cell_jacobian(scale * disp, step) >= min_jacobian).all():
            break
    return np.float32(scale) * disp


def invert(disp: np.ndarray, step: int, iterations: int = 6, tolerance: float = 0.05) -> np.ndarray:
    """Backward displacement b with y + b + disp(y + b) = y at every grid node (to ``tolerance`` px).

    Newton's method from the best of a few guesses along -disp(y), halving steps that do not
    reduce the residual, with the fast ``sample``; the residual is then checked with exact bilinear
    sampling, and the nodes still off (deep inside a strongly stretched band such as an opening
    mouth) are bracketed by bisection along -disp(y) and polished with exact sampling; any still off
    (edits far beyond the FACS range) start again from the nearest point of a dense forward map.
    """
    gy, gx = np.indices(disp.shape[:2], dtype=np.float32)
    solver = _Newton(disp, step, gx.ravel()[None], gy.ravel()[None])
    back = solver.solve(solver.start(), iterations, tolerance)
    res = _Newton(disp, step, solver.x, solver.y, sample_exact).residual(back)
    bad = np.flatnonzero(np.einsum("...k,...k->...", res, res)[0] > tolerance**2)
    if bad.size:
        sub = _Newton(disp, step, solver.x[:, bad], solver.y[:, bad], sample_exact)
        back[:, bad] = sub.solve(sub.bisect(), 2 * iterations, tolerance)
        lost = np.einsum("...k,...k->...", sub.res, sub.res)[0] > tolerance**2
        if lost.any():  # far from -disp(y): start from the nearest point of a dense forward map
            far = _Newton(disp, step, sub.x[:, lost], sub.y[:, lost], sample_exact)
            back[:, bad[lost]] = far.solve(far.nearest(), 4 * iterations, tolerance)
            off = np.sqrt(np.einsum("...k,...k->...", far.res, far.res)[0])
            if (off > 4 * tolerance).any():
                warnings.warn(f"warp inversion: {int((off > 4 * tolerance).sum())} grid node(s) off by up to "
                              f"{off.max():.2f} px (an edit far beyond the FACS range)", stacklevel=2)
    return back.reshape(disp.shape)


class _Newton:
    """Solves y + b + disp(y + b) = y for b at the points (x, y) (grid units, shape (1, N))."""

    def __init__(self, disp: np.ndarray, step: int, x: np.ndarray, y: np.ndarray,
                 sampler: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] = sample) -> None:
        self.disp, self.jac, self.step, self.x, self.y = disp, jacobian(disp, step), step, x, y
        self.sampler = sampler
        self.res = np.zeros((*x.shape, 2), np.float32)

    def at(self, field: np.ndarray, b: np.ndarray) -> np.ndarray:
        """A grid field sampled at the points displaced by ``b`` (pixels)."""
        return self.sampler(field, self.x + b[..., 0] / self.step, self.y + b[..., 1] / self.step)

    def residual(self, b: np.ndarray) -> np.ndarray:
        return b + self.at(self.disp, b)

    def start(self) -> np.ndarray:
        """The best of b = -disp(y), -disp(y) / 2 and 0."""
        d = self.at(self.disp, np.zeros_like(self.res))
        back, self.res = _best_guess([-d, -0.5 * d, np.zeros_like(d)], self.residual)
        return back

    def bisect(self, steps: int = 14, reach: float = 3.0) -> np.ndarray:
        """Root of the residual along b = -t disp(y), t in [0, reach], by bisection."""
        d = self.at(self.disp, np.zeros_like(self.res))
        lo, hi = np.zeros(self.x.shape, np.float32), np.full(self.x.shape, reach, np.float32)
        for _ in range(steps):
            mid = (lo + hi) / 2
            ahead = np.einsum("...k,...k->...", self.residual(-mid[..., None] * d), d) > 0
            lo, hi = np.where(ahead, mid, lo), np.where(ahead, hi, mid)
        back = -((lo + hi) / 2)[..., None] * d
        self.res = self.residual(back)
        return back

    def nearest(self, fine: int = 8) -> np.ndarray:
        """For each point, the backward displacement to the nearest of a ``fine`` x ``fine`` per cell sampling of
        the forward map (a start where the map is stretched too far for the guesses along -disp(y))."""
        from scipy.spatial import cKDTree

        h, w = self.disp.shape[:2]
        gy, gx = np.mgrid[0:h - 1:complex(0, fine * (h - 1) + 1), 0:w - 1:complex(0, fine * (w - 1) + 1)]
        moved = sample_exact(self.disp, gx, gy) / self.step
        _, index = cKDTree(np.column_stack([(gx + moved[..., 0]).ravel(), (gy + moved[..., 1]).ravel()])).query(
            np.column_stack([self.x.ravel(), self.y.ravel()]))
        start = np.stack([gx.ravel()[index] - self.x.ravel(), gy.ravel()[index] - self.y.ravel()], -1)[None]
        back = (self.step * start).astype(np.float32)
        self.res = self.residual(back)
        return back

    def solve(self, back: np.ndarray, iterations: int, tolerance: float) -> np.ndarray:
        """Newton steps from ``back`` (whose residual is ``self.res``), halved when they overshoot."""
        res = self.res
        for _ in range(iterations):
            if np.abs(res).max() < tolerance:
                break
            j = self.at(self.jac, back)
            det = j[..., 0] * j[..., 3] - j[..., 1] * j[..., 2]
            delta = np.stack([j[..., 3] * res[..., 0] - j[..., 1] * res[..., 1],
                              j[..., 0] * res[..., 1] - j[..., 2] * res[..., 0]], -1) / det[..., None]
            back, res = _best_guess([back, back - delta, back - 0.5 * delta], self.residual, (back, res))
        self.res = res
        return back


def _best_guess(guesses: list[np.ndarray], residual: Callable[[np.ndarray], np.ndarray],
                known: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per node, the guess with the smallest residual (``known`` gives the first one's residual)."""
    best, best_res = known if known is not None else (guesses[0], residual(guesses[0]))
    best_norm = np.einsum("...k,...k->...", best_res, best_res)
    for guess in guesses[1:]:
        res = residual(guess)
        norm = np.einsum("...k,...k->...", res, res)
        better = norm < best_norm
        best, best_res = np.where(better[..., None], guess, best), np.where(better[..., None], res, best_res)
        best_norm = np.minimum(norm, best_norm)
    return best, best_res


def upsample(field: np.ndarray, r0: int, c0: int, step: int, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Bilinear full-resolution version of a coarse field whose first node is grid cell (r0, c0).

    Returns the pixel block (clipped to the ``size`` x ``size`` crop) and its top-left pixel (y0, x0).
    """
    rows, cols = field.shape[:2]
    up = cv2.resize(field, (cols * step, rows * step), interpolation=cv2.INTER_LINEAR)
    y0, x0 = r0 * step, c0 * step
    return up[: min(size, (r0 + rows) * step) - y0, : min(size, (c0 + cols) * step) - x0], (y0, x0)


def warp_window(image: np.ndarray, disp: np.ndarray, origin: tuple[int, int], step: int,
                source: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply a one-to-one forward displacement window to a square image.

    ``disp`` is the window's forward displacement, its first node at grid cell ``origin`` = (r0, c0).
    Pixels of the window are resampled from ``source`` (default: ``image``, same shape), the rest
    are ``image``'s. Returns the warped image and the window's backward displacement.
    """
    back = invert(disp, step)
    up, (y0, x0) = upsample(back, *origin, step, image.shape[0])
    xs = np.arange(x0, x0 + up.shape[1], dtype=np.float32)[None, :]
    ys = np.arange(y0, y0 + up.shape[0], dtype=np.float32)[:, None]
    out = image.copy()
    out[y0:y0 + up.shape[0], x0:x0 + up.shape[1]] = cv2.remap(
        image if source is None else source, up[..., 0] + xs, up[..., 1] + ys, cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE)
    return out, back

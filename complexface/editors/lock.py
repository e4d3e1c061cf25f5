"""Geometry lock: after any edit, warp chosen face regions back to their source shape, leaving the expression alone.

API::

    lock = GeometryLock(["nose", "face_outline"])      # names from REGIONS, else SettingError
    locked = lock.apply(source, edited, edited_landmarks, trusted=None)

``source`` is the ``AlignedFace`` that was edited, ``edited`` the edited crop and ``edited_landmarks``
the edit's 478 MediaPipe landmarks in crop pixels ((478, 2) or (478, 3): re-detected on the edit, or
known from the editor). The locked regions' landmarks move from where the edit put them back to their
source positions; every other landmark stays exactly where the edit put it, so the expression is not
touched. ``trusted`` (optional (478,) bool) leaves the landmarks marked False out of the constraints
(say, ones a detector got wrong). When the locked landmarks are within ``MIN_MOTION`` px of their
source positions, ``apply`` returns the edited crop unchanged. ``lock.warp(...)`` gives the
``LandmarkWarp`` itself (``.apply(image)``, ``.move(points)``: where it takes points).

Lower level, for any landmark motion: ``warp_landmarks(image, landmarks_xy, targets_xy, moving)``
moves the ``moving`` landmarks to their targets and pins the rest (``landmark_warp``: the warp).

Method: the motion of every (trusted) landmark, target minus position (0 for pinned ones), is
interpolated by compactly supported Wendland radial functions on the coarse grid (weights spread
bilinearly onto the grid nodes and filtered with the kernel; the linear system, at most 478 x 478, is
set up for that grid field, so it is exact at the landmarks), faded to zero within the face region
around the landmarks (``face_mask``'s margin: hair and background stay still), capped to stay
one-to-one, inverted and applied with the warp editor's displacement machinery
(``complexface.editors.displacement``). A motion that would fold the image (a landmark pushed past a
pinned neighbour, such as the jaw line pulled up past the chin landmarks a jaw drop moved along with
it) is attenuated there by the cap instead of reached. About 10-20 ms per edit at 512 px on one core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from complexface.editors.displacement import cap, warp_window
from complexface.faces.align import FACE_MARGIN, AlignedFace
from complexface.faces.landmarks import FACE_OVAL, IRIS_CENTERS, N_LANDMARKS
from complexface.settings import SettingError, require

NOSE = (1, 2, 3, 4, 5, 6, 19, 20, 44, 45, 48, 49, 51, 59, 60, 64, 75, 79, 94, 97, 98, 99, 102, 115, 122, 125, 129,
        131, 134, 141, 166, 168, 174, 193, 195, 196, 197, 198, 209, 217, 218, 219, 220, 235, 236, 237, 238, 239, 240,
        241, 242, 248, 250, 274, 275, 278, 279, 281, 289, 290, 294, 305, 309, 326, 327, 328, 331, 344, 351, 354, 358,
        360, 363, 370, 392, 399, 417, 419, 420, 429, 437, 438, 439, 440, 455, 456, 457, 458, 459, 460, 461, 462)
"""Bridge from the nasion (168) down, tip, wings and nostrils: every mesh point inside the outline
168-417-351-419-399-437-429-279-358-294-327-326-2-97-98-64-129-49-209-217-174-196-122-193."""
EYES = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,
        249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466, *range(468, 478))
"""Both eyelid contours and irises."""
BROWS = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191,
        267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)
"""Outer and inner lip contours."""
REGIONS: dict[str, tuple[int, ...]] = {
    "nose": NOSE, "face_outline": tuple(FACE_OVAL), "eyes": EYES, "brows": BROWS, "lips": LIPS,
}
"""Lockable regions: MediaPipe face-mesh landmark indices."""
KERNEL_RADIUS = 0.25
"""Support radius of the interpolating radial functions, in inter-ocular distances."""
MIN_MOTION = 0.05
"""Locked landmarks closer than this (px) to their targets need no warp."""
NEGLIGIBLE = 0.01
"""Motion (px) below which the warp leaves a grid node still (a 1/64 px shift does not change a remapped pixel)."""
RIDGE = 1e-3
"""Tikhonov term of the interpolation system (keeps near-coincident landmarks solvable)."""
REACH = 4
"""Landmarks farther than this many kernel radii from every moving one are left out of the system: their
weights would be below 1e-3 px (the weights fall about tenfold per kernel radius)."""
CORNERS = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
"""(column, row) offsets of a grid cell's four nodes from its top-left one."""


def wendland(r: np.ndarray) -> np.ndarray:
    """Wendland's C2 function (1 - r)^4 (4r + 1): 1 at 0, 0 from r = 1 on, positive definite in 2D."""
    r = np.minimum(r, 1.0)
    t = (1 - r) * (1 - r)
    return t * t * (4 * r + 1)


@dataclass(frozen=True)
class LandmarkWarp:
    """A one-to-one warp as a forward displacement window on the coarse grid (first node: grid cell ``origin``)."""

    disp: np.ndarray
    origin: tuple[int, int]
    step: int

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The warped image (pixels outside the window are ``image``'s)."""
        return warp_window(image, self.disp, self.origin, self.step)[0]

    def move(self, points: np.ndarray) -> np.ndarray:
        """Where the warp takes (N, 2) crop-pixel points."""
        points = np.asarray(points, float)[:, :2]
        grid = ((points - (self.step - 1) / 2) / self.step - self.origin[::-1]).astype(np.float32)
        moved = cv2.remap(self.disp, grid[None, :, 0], grid[None, :, 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return points + moved[0]


def landmark_warp(landmarks_xy: np.ndarray, targets_xy: np.ndarray, moving: np.ndarray, size: int,
                  trusted: np.ndarray | None = None, grid_step: int = 4,
                  min_jacobian: float = 0.3) -> LandmarkWarp | None:
    """The warp of a ``size`` px crop moving the ``moving`` landmarks to their targets, pinning the rest.

    ``landmarks_xy``/``targets_xy``: (478, 2 or 3) crop pixels; ``moving``/``trusted``: (478,) bool
    (untrusted landmarks are no constraint at all). None when no trusted moving landmark is
    ``MIN_MOTION`` px or more from its target.
    """
    xy = np.asarray(landmarks_xy, float)[:, :2]
    targets = np.asarray(targets_xy, float)[:, :2]
    if xy.shape != (N_LANDMARKS, 2) or targets.shape != xy.shape:
        raise ValueError(f"expected (478, 2) or (478, 3) landmarks and targets, got {xy.shape} and {targets.shape}")
    use = np.ones(len(xy), bool) if trusted is None else np.asarray(trusted, bool)
    motion = np.where(np.asarray(moving, bool)[:, None], targets - xy, 0.0)[use]
    if not len(motion) or np.hypot(*motion.T).max() < MIN_MOTION:
        return None
    radius = KERNEL_RADIUS * float(np.linalg.norm(xy[IRIS_CENTERS[1]] - xy[IRIS_CENTERS[0]]))
    points = xy[use]
    square = _square_distance(points, points)
    near = square[:, np.hypot(*motion.T) > 0].min(axis=1) < (REACH * radius) ** 2
    splat = _Splat.of(points[near], grid_step)
    table = _kernel_table(radius, grid_step)
    pairs = np.nonzero(square[np.ix_(near, near)] < (radius + 3 * grid_step) ** 2)
    gram = splat.gram(*pairs, table)
    gram.flat[::len(gram) + 1] += RIDGE
    weights = np.linalg.solve(gram, motion[near])
    field, (r0, c0) = splat.spread(weights, table, math.ceil(size / grid_step))
    window = (r0, r0 + field.shape[0], c0, c0 + field.shape[1])
    width = float(np.ptp(xy[FACE_OVAL, 0]))
    field *= _gate(np.concatenate([xy[use], targets[use]]), FACE_MARGIN * width, grid_step, window)[..., None]
    moves = np.abs(field).max(axis=-1) >= NEGLIGIBLE
    rows, cols = np.nonzero(moves)
    if not rows.size:
        return None
    a0, a1 = max(rows.min() - 2, 0), rows.max() + 3
    b0, b1 = max(cols.min() - 2, 0), cols.max() + 3
    disp = cap(np.where(moves[..., None], field, 0)[a0:a1, b0:b1].astype(np.float32), grid_step, min_jacobian)
    return LandmarkWarp(disp, (r0 + a0, c0 + b0), grid_step)


def warp_landmarks(image: np.ndarray, landmarks_xy: np.ndarray, targets_xy: np.ndarray, moving: np.ndarray,
                   trusted: np.ndarray | None = None, grid_step: int = 4, min_jacobian: float = 0.3) -> np.ndarray:
    """``image`` (a square crop) warped so the ``moving`` landmarks go to their targets while the rest stay put.

    See ``landmark_warp``; returns ``image`` itself when nothing needs to move.
    """
    warp = landmark_warp(landmarks_xy, targets_xy, moving, image.shape[0], trusted, grid_step, min_jacobian)
    return image if warp is None else warp.apply(image)


def _square_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared distances between two point sets."""
    return np.maximum((a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1) - 2 * a @ b.T, 0.0)


def _kernel_table(radius: float, step: int) -> np.ndarray:
    """The Wendland function of ``radius`` px at the grid offsets it reaches: a (2m + 1) square filter."""
    offsets = step * np.arange(-math.ceil(radius / step), math.ceil(radius / step) + 1)
    return wendland(np.hypot(offsets[:, None], offsets) / radius)


@dataclass(frozen=True)
class _Splat:
    """Points on the coarse grid: the (column, row) of the top-left node of each point's cell and its
    bilinear weights on the cell's four ``CORNERS``.

    The interpolant is the kernel filter applied to the points' weights spread onto these nodes, and it
    is read at a point bilinearly from the same nodes, so ``gram`` is exact for the field on the grid.
    """

    base: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, points: np.ndarray, step: int) -> _Splat:
        grid = (points - (step - 1) / 2) / step
        base = np.floor(grid)
        fx, fy = (grid - base).T
        weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
        return cls(base.astype(int), weights)

    def gram(self, i: np.ndarray, j: np.ndarray, table: np.ndarray) -> np.ndarray:
        """(n, n) value at point i of the field of a unit weight at point j, for the pairs (i, j) given
        (closer than the kernel radius plus three cells; all others are too far apart to interact)."""
        m, pad = table.shape[0] // 2, 5
        padded = np.pad(table, pad).ravel()
        side = table.shape[0] + 2 * pad
        corner = CORNERS[:, 1] * side + CORNERS[:, 0]
        d = self.base[i] - self.base[j] + m + pad
        phi = padded[(d[:, 1] * side + d[:, 0])[:, None, None] + corner[:, None] - corner]
        value = np.einsum("pl,pl->p", np.einsum("pk,pkl->pl", self.weights[i], phi), self.weights[j])
        n = len(self.base)
        return np.bincount(i * n + j, value, minlength=n * n).reshape(n, n)

    def spread(self, values: np.ndarray, table: np.ndarray, n: int) -> tuple[np.ndarray, tuple[int, int]]:
        """The (H, W, 2) field of the points' ``values`` at the nodes of an n x n grid it reaches, and its
        first node (r0, c0)."""
        m = table.shape[0] // 2
        nodes = self.base[:, None] + CORNERS
        lo, hi = nodes.min(axis=(0, 1)) - m, nodes.max(axis=(0, 1)) + m + 1
        w, h = hi - lo
        flat = ((nodes[..., 1] - lo[1]) * w + nodes[..., 0] - lo[0]).ravel()
        spread = self.weights[..., None] * values[:, None]
        grid = np.stack([np.bincount(flat, spread[..., k].ravel(), minlength=h * w) for k in range(2)], -1)
        field = cv2.filter2D(grid.reshape(h, w, 2), -1, table, borderType=cv2.BORDER_CONSTANT)
        (c0, r0), (c1, r1) = np.clip(lo, 0, n), np.clip(hi, 0, n)
        return field[r0 - lo[1]:r1 - lo[1], c0 - lo[0]:c1 - lo[0]], (int(r0), int(c0))


def _gate(points: np.ndarray, margin: float, step: int, window: tuple[int, int, int, int]) -> np.ndarray:
    """At the window's grid nodes: 1 up to 2.5 cells from the points' hull (so at the nodes around every
    point), 0 from ``margin`` less the reach of a node's motion (``step * sqrt(2)``) and a pixel on: the warp
    leaves every pixel outside ``face_mask``'s margin around the hull still."""
    r0, r1, c0, c1 = window
    grid = (points - (step - 1) / 2) / step - (c0, r0)
    core = np.zeros((r1 - r0, c1 - c0), np.uint8)
    cv2.fillPoly(core, [np.round(cv2.convexHull(grid.astype(np.float32))[:, 0] * 16).astype(np.int32)], 1, shift=4)
    distance = step * cv2.distanceTransform(1 - core, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    inner = 2.5 * step
    outer = max(margin - step * math.sqrt(2) - 1, inner + step)
    return _smoothstep((outer - distance) / (outer - inner))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """Hermite ramp: 0 at x <= 0, 1 at x >= 1."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class GeometryLock:
    """Warps the locked ``regions`` (names from ``REGIONS``) of an edited crop back to the source shape.

    ``grid_step``/``min_jacobian``: coarse grid spacing (px) and smallest local area ratio of the warp.
    """

    def __init__(self, regions: Sequence[str], grid_step: int = 4, min_jacobian: float = 0.3) -> None:
        regions = [regions] if isinstance(regions, str) else list(regions)
        unknown = [r for r in regions if r not in REGIONS]
        if unknown:
            raise SettingError(f"unknown lock region(s) {', '.join(map(repr, unknown))}; "
                               f"valid regions: {', '.join(REGIONS)}")
        require(grid_step >= 1 and 0 < min_jacobian < 1,
                f"geometry lock: grid_step must be >= 1 and min_jacobian in (0, 1), got {grid_step} and {min_jacobian}")
        self.regions = regions
        self.grid_step = grid_step
        self.min_jacobian = min_jacobian
        self.locked = np.zeros(N_LANDMARKS, bool)
        self.locked[[i for r in regions for i in REGIONS[r]]] = True

    def warp(self, source: AlignedFace, edited_landmarks: np.ndarray,
             trusted: np.ndarray | None = None) -> LandmarkWarp | None:
        """The warp taking the locked landmarks from ``edited_landmarks`` back to ``source``'s (None: no motion)."""
        edited_xy = np.asarray(edited_landmarks, float)[:, :2]
        targets = np.where(self.locked[:, None], source.landmarks.xy, edited_xy)
        return landmark_warp(edited_xy, targets, self.locked, source.size, trusted, self.grid_step, self.min_jacobian)

    def apply(self, source: AlignedFace, edited: np.ndarray, edited_landmarks: np.ndarray,
              trusted: np.ndarray | None = None) -> np.ndarray:
        """``edited`` with its locked regions warped back to ``source``'s shape (``edited`` itself when
        they did not move)."""
        warp = self.warp(source, edited_landmarks, trusted)
        return edited if warp is None else warp.apply(edited)

"""The face frame the warp editor designs in (u along the eye line, v down, unit = inter-ocular
distance), the landmark sets its AUs own, smooth profiles, and the per-face geometry (coarse grid,
face gate, inner-lip seam) with the field primitives (bumps, bands, boxes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from complexface.faces.align import FACE_MARGIN, face_core
from complexface.faces.landmarks import IRIS_CENTERS, LOWER_INNER_LIP, UPPER_INNER_LIP, Landmarks

# (image-left, image-right) landmark lists; image-left is the subject's right side.
BROW = ((70, 63, 105, 66, 107), (300, 293, 334, 296, 336))
BROW_LOWER = ((46, 53, 52, 65, 55), (276, 283, 282, 295, 285))
UPPER_LID = ((33, 246, 161, 160, 159, 158, 157, 173, 133), (263, 466, 388, 387, 386, 385, 384, 398, 362))
LOWER_LID = ((33, 7, 163, 144, 145, 153, 154, 155, 133), (263, 249, 390, 373, 374, 380, 381, 382, 362))
CHEEK = ((117, 118, 101, 50), (346, 347, 330, 280))
NOSE_WING = ((49, 129, 48, 64, 102), (279, 358, 278, 294, 331))
LIP_CORNER = (61, 291)
UPPER_LIP_MID = (0, 13)
LOWER_LIP_MID = (14, 17)
CHIN_BOSS = (18, 200, 199)
MENTON = 152
NASION = 168
NOSE_TIP = (1, 4)
SIDES = (-1, 1)
"""Sign of "outward" along u for the image-left and image-right halves."""
NECK_FLOOR = 0.08
"""Smallest area ratio the warp may leave the neck below the chin bottom (where a jaw drop folds it)."""
SIDE_BLEND = 0.05
"""Half width (face units) of the band across the midline where a one-sided AU (``AU12L``) fades out."""
EASE = 0.25
"""Fraction of a falloff spent easing in and out; the rest is linear (steepest slope 1 / (1 - EASE))."""


def falloff(r: np.ndarray) -> np.ndarray:
    """C1 compact falloff: 1 at r <= 0, 0 at r >= 1, flat at both ends and linear in between.

    Its steepest slope is 1.33 (a Wendland or smoothstep profile has 2.1 or 1.5), so a given
    motion compresses the skin it fades over as little as possible.
    """
    r = np.clip(r, 0.0, 1.0)
    slope = 1 / (1 - EASE)
    head = slope * r * r / (2 * EASE)
    tail = 1 - slope * (1 - r) ** 2 / (2 * EASE)
    middle = slope * (r - EASE / 2)
    return 1 - np.where(r < EASE, head, np.where(r > 1 - EASE, tail, middle))


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Hermite ramp: 0 at x <= 0, 1 at x >= 1."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def smooth_interp(x: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """C1 interpolation through (knots, values) with flat tangents; 0 outside the knots."""
    k = np.clip(np.searchsorted(knots, x) - 1, 0, len(knots) - 2)
    t = (x - knots[k]) / (knots[k + 1] - knots[k])
    out = values[k] + smoothstep(t) * (values[k + 1] - values[k])
    return np.where((x < knots[0]) | (x > knots[-1]), 0.0, out)


@dataclass(frozen=True)
class FaceFrame:
    """Similarity between crop pixels and the face frame (u right along the eye line, v down)."""

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    unit: float

    @classmethod
    def of(cls, landmarks: Landmarks) -> FaceFrame:
        left, right = landmarks.points[list(IRIS_CENTERS), :2]
        axis = right - left
        unit = float(np.linalg.norm(axis))
        ex = axis / unit
        return cls((left + right) / 2, ex, np.array([-ex[1], ex[0]]), unit)

    def to_uv(self, xy: np.ndarray) -> np.ndarray:
        """Crop pixels -> face-frame points."""
        rel = xy - self.origin
        return np.stack([rel @ self.ex, rel @ self.ey], axis=-1) / self.unit

    def to_xy(self, uv: np.ndarray) -> np.ndarray:
        """Face-frame points -> crop pixels."""
        uv = np.asarray(uv, float)
        return self.origin + self.unit * (uv[..., :1] * self.ex + uv[..., 1:] * self.ey)

    def to_pixels(self, field: np.ndarray) -> np.ndarray:
        """(2, H, W) face-frame vectors -> (H, W, 2) pixel vectors."""
        du, dv = field
        return self.unit * (du[..., None] * self.ex + dv[..., None] * self.ey)


class Geometry:
    """One face's landmarks and coarse grid in face units, with the field primitives."""

    def __init__(self, image: np.ndarray, landmarks: Landmarks, step: int) -> None:
        self.landmarks = landmarks
        self.frame = FaceFrame.of(landmarks)
        self.uv = self.frame.to_uv(landmarks.xy)
        self.step = step
        self.side_scale = self._side_scale()
        n = math.ceil(image.shape[0] / step)
        centers = step * np.arange(n) + (step - 1) / 2
        gx, gy = np.meshgrid(centers, centers)
        self.U, self.V = np.moveaxis(self.frame.to_uv(np.stack([gx, gy], -1)), -1, 0)
        self._fit_mouth(image)

    def face_gate(self, drop: float = 0.0, inside: float = 0.08, outside: float = 0.06) -> np.ndarray:
        """1 inside the face region's core, fading to 0 from ``inside`` within its outline to ``outside``
        beyond it (face units), and in any case before ``face_mask``'s boundary.

        The core is ``face_core``: the hull of all landmarks, swept ``drop`` face units down for motions
        that lengthen the face. A pixel outside ``face_mask`` lies at least its margin (less a pixel)
        from the core, and its motion is interpolated from grid nodes within ``step * sqrt(2)`` of it,
        sampled half a pixel off their centres: the gate is 0 at all of them, so a field multiplied by
        it leaves every pixel outside ``face_mask`` (hair, background) unchanged.
        """
        unit = self.frame.unit
        core = face_core(self.landmarks, self.U.shape[0] * self.step, drop)
        signed = (cv2.distanceTransform(1 - core, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
                  - cv2.distanceTransform(core, cv2.DIST_L2, cv2.DIST_MASK_PRECISE))
        signed = signed[self.step // 2::self.step, self.step // 2::self.step]
        reach = min(outside * unit, FACE_MARGIN * self.landmarks.width - self.step * math.sqrt(2) - 2)
        return falloff((signed + inside * unit) / (inside * unit + reach))

    def floor(self, min_jacobian: float) -> np.ndarray:
        """Smallest area ratio per grid cell for the one-to-one cap: ``min_jacobian``, falling to
        ``NECK_FLOOR`` on the neck below the chin bottom, which a jaw drop folds under the chin (in a photo
        the chin covers it; a one-to-one warp can only squeeze it)."""
        v = (self.V[:-1, :-1] + self.V[1:, 1:]) / 2
        neck = smoothstep((v - self.uv[MENTON, 1]) / 0.05)
        return (min_jacobian + (min(NECK_FLOOR, min_jacobian) - min_jacobian) * neck).astype(np.float32)

    def left_share(self, u: np.ndarray | None = None) -> np.ndarray:
        """How much of a bilateral field belongs to the person's left side (the image-right half of a frontal
        photo), at the grid nodes or at face-frame ``u``: 0 beyond ``SIDE_BLEND`` face units right of the
        midline (the nose bridge), 1 as far left of it, smooth in between."""
        u = self.U if u is None else u
        return smoothstep((u - self.uv[168, 0]) / (2 * SIDE_BLEND) + 0.5)

    def at(self, ids: Sequence[int] | int) -> np.ndarray:
        """Mean face-frame position of the given landmarks."""
        return self.uv[np.atleast_1d(ids)].mean(axis=0)

    def zeros(self) -> np.ndarray:
        """An empty (2, H, W) face-frame field."""
        return np.zeros((2, *self.U.shape))

    def _side_scale(self) -> dict[int, float]:
        """Horizontal scale of each half of the face (a turned head foreshortens its far side)."""
        mid = self.uv[168, 0]
        halves = {-1: mid - self.uv[:, 0].min(), 1: self.uv[:, 0].max() - mid}
        mean = (halves[-1] + halves[1]) / 2
        return {0: 1.0, **{s: float(np.clip(h / mean, 0.6, 1.25)) for s, h in halves.items()}}

    def bump(self, center: np.ndarray, vec: tuple[float, float], side: int = 0, inward: float = 0.3,
             outward: float = 0.3, up: float = 0.3, down: float = 0.3, plateau: float = 0.0) -> np.ndarray:
        """A compact smooth bump moving by ``vec`` = (outward, down) at its centre.

        ``side`` is -1/1 for the image-left/right half (0: central). Radii differ towards the
        midline/outside and up/down; ``plateau`` is the fraction of the radius that moves rigidly.
        """
        sign, scale = side or 1, self.side_scale[side]
        du = (self.U - center[0]) * sign
        dv = self.V - center[1]
        r = np.hypot(du / (scale * np.where(du > 0, outward, inward)), dv / np.where(dv > 0, down, up))
        weight = falloff((r - plateau) / (1 - plateau))
        return np.stack([weight * vec[0] * sign * scale, weight * vec[1]])

    def box(self, u_range: tuple[float, float], v_range: tuple[float, float], vec: tuple[float, float],
            fall_u: float, fall_up: float, fall_down: float) -> np.ndarray:
        """A central rigid block (in face units) moving by ``vec``, fading smoothly outside it."""
        du = np.maximum(0, np.maximum(u_range[0] - self.U, self.U - u_range[1])) / fall_u
        over, under = (v_range[0] - self.V) / fall_up, (self.V - v_range[1]) / fall_down
        weight = falloff(du) * falloff(np.maximum(0, np.maximum(over, under)))
        return np.stack([weight * vec[0], weight * vec[1]])

    def band(self, points: np.ndarray, vecs: Sequence[tuple[float, float]], side: int = 0,
             up: float | Sequence[float] = 0.2, down: float | Sequence[float] = 0.2, core: float = 0.0,
             reach_in: float = 0.15, reach_out: float = 0.15) -> np.ndarray:
        """A band along a curve (quadratic through ``points``) moving by per-point ``vecs``.

        The motion falls to zero ``up``/``down`` away from the curve (beyond a rigid ``core``) and
        ``reach_in``/``reach_out`` beyond the curve's ends.
        """
        order = np.argsort(points[:, 0])
        u, v = points[order, 0], points[order, 1]
        vecs = np.asarray(vecs, float)[order]
        up_k = np.broadcast_to(np.asarray(up, float), u.shape)[order]
        down_k = np.broadcast_to(np.asarray(down, float), u.shape)[order]
        curve = np.polyval(np.polyfit(u, v, 2), np.clip(self.U, u[0], u[-1]))
        dv = self.V - curve
        radius = np.where(dv > 0, np.interp(self.U, u, down_k), np.interp(self.U, u, up_k))
        across = falloff((np.abs(dv) - core) / radius)
        sign, scale = side or 1, self.side_scale[side]
        left, right = (reach_out, reach_in) if side < 0 else (reach_in, reach_out)
        knots = np.concatenate([[u[0] - scale * left], u, [u[-1] + scale * right]])
        values = np.concatenate([[[0, 0]], vecs, [[0, 0]]])
        along = [smooth_interp(self.U, knots, values[:, k]) for k in range(2)]
        return np.stack([across * along[0] * sign * scale, across * along[1]])

    def _fit_mouth(self, image: np.ndarray) -> None:
        """The inner-lip seam's height along u (``seam_v``), the mouth ``span`` (1 at the centre, 0 at
        the inner corners), its centre, half width and median inner-lip gap (face units).

        A closed mouth's seam runs between the inner lips; in an open mouth it follows the darkest
        line between them (the gap between the teeth), so opening further keeps the real teeth.
        """
        gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (0, 0), 1.5)
        mid = np.array([_darkest_between(gray, self.frame, self.uv[a], self.uv[b])
                        for a, b in zip(UPPER_INNER_LIP, LOWER_INNER_LIP)])
        self.mouth_gap = float(np.median(self.uv[list(LOWER_INNER_LIP), 1] - self.uv[list(UPPER_INNER_LIP), 1]))
        order = np.argsort(mid[:, 0])
        u, v = mid[order, 0], mid[order, 1]
        self.seam_v = np.polyval(np.polyfit(u, v, 4), np.clip(self.U, u[0], u[-1]))
        self.mouth_center, self.mouth_half = (u[0] + u[-1]) / 2, (u[-1] - u[0]) / 2
        x = np.clip(np.abs(self.U - self.mouth_center) / self.mouth_half, 0, 1)
        self.span = (1 - x * x) ** 0.75

    def above_seam(self) -> np.ndarray:
        """1 above the seam, 0 below, with a smooth step two grid cells wide (at least one cell and
        a third of the gap when the mouth is open, so the real interior moves with its lip)."""
        cell = float(np.hypot(self.U[1, 0] - self.U[0, 0], self.V[1, 0] - self.V[0, 0]))
        width = float(np.clip(self.mouth_gap / 3, cell, 2 * cell)) if self.mouth_gap > 2 * cell else 2 * cell
        return smoothstep((self.seam_v - self.V) / width + 0.5)

    def lower_gate(self) -> np.ndarray:
        """Multiplier for fields that move the lower lip only: 0 above the seam inside the mouth."""
        return 1 - self.above_seam() * self.span

    def jaw_share(self, chin: float, corners: float = 0.35) -> np.ndarray:
        """Share of a jaw drop each point follows: the upper lip stays, the lower lip follows fully
        at its centre and by ``corners`` at the lip corners, and everything from ``chin`` (v) down
        follows fully."""
        above = self.above_seam()
        lip = corners + (1 - corners) * self.span
        ramp = smoothstep((self.V - self.seam_v) / max(chin - float(self.seam_v.mean()), 0.05))
        return above * corners * (1 - self.span) + (1 - above) * (lip + (1 - lip) * ramp)

    def upper_gate(self) -> np.ndarray:
        """Multiplier for fields that move the upper lip only: 0 below the seam inside the mouth."""
        return 1 - (1 - self.above_seam()) * self.span

    def sides(self, pairs: tuple[Sequence[int], Sequence[int]] | Sequence[int]):
        """(side, landmarks) for the image-left and image-right halves."""
        return zip(SIDES, pairs)


def _darkest_between(gray: np.ndarray, frame: FaceFrame, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The darkest point (face units) on the lower part of the segment between two inner-lip points
    (below the upper teeth); the midpoint when they (nearly) touch."""
    if lower[1] - upper[1] < 0.02:
        return (upper + lower) / 2
    t = np.linspace(0.35, 0.9, 12)[:, None]
    points = upper + t * (lower - upper)
    xy = frame.to_xy(points).astype(np.float32)
    luma = cv2.remap(gray, xy[None, :, 0], xy[None, :, 1], cv2.INTER_LINEAR)[0]
    return points[int(np.argmin(luma))]


def sorted_uv(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of face-frame points sorted by u, ready for ``np.interp``."""
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]

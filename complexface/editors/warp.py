"""Geometric FACS editor ("warp"): landmark-anchored displacement fields, a one-to-one smooth
warp, a synthesised mouth interior and soft wrinkle shading. No neural weights.

Design
- Face frame: origin between the irises, ``u`` along the eye line (image right, so head roll
  drops out), ``v`` down, unit = inter-ocular distance. Each AU is a sum of smooth compact bumps
  and curve bands anchored to its landmarks (brows, lids, cheeks, nose wings, lip corners, chin,
  the inner-lip seam), designed at intensity 3 and linear in intensity; the two sides mirror
  (the far half of a turned head is narrowed). Fields fade to zero inside the face region
  (``complexface.faces.align.face_mask``), so hair and background stay exactly still.
- Per face (cached) each AU's field is evaluated once on a coarse grid (``grid_step`` px). An
  edit is ``sum(intensity x field)``; where a grid cell would keep less than ``min_jacobian`` of
  its area the displacement is attenuated smoothly around it (scaling the whole edit down is the
  guaranteed fallback), so the warp stays one-to-one: a brow pushed too far stops above the lid.
  The forward map is inverted on the coarse grid (Newton with a bisection fallback), upsampled,
  and applied with one ``cv2.remap`` over the window the edit touches
  (``complexface.editors.displacement``).
- Lip parting (AU25, AU26) moves the two lips on either side of the inner-lip seam; the seam
  band the warp stretches open is painted as a dark cavity with a hint of upper teeth. In a
  mouth that is already open the seam follows the darkest line between the lips, so its real
  teeth move with their lip and the new gap opens between them.
- Wrinkles (AU4 glabella furrows, AU6 crow's feet, AU9 nose-bridge lines, AU12 nasolabial fold)
  are soft multiplicative shading drawn on the source from landmarks, so the warp carries them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from complexface.au import BILATERAL, EDITABLE, AUEdit
from complexface.editors.base import Editor
from complexface.editors.displacement import cap, jacobian, sample, upsample, warp_window
from complexface.faces.align import FACE_MARGIN, JAW_DROP_ROOM, AlignedFace, face_core
from complexface.faces.landmarks import FACE_OVAL, IRIS_CENTERS, LOWER_INNER_LIP, UPPER_INNER_LIP, Landmarks
from complexface.settings import require

DESIGN_INTENSITY = 3.0
"""The AU fields below give the motion at this intensity (face units); they scale linearly."""

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
NOSE_TIP = (1, 4)
SIDES = (-1, 1)
"""Sign of "outward" along u for the image-left and image-right halves."""
TOOTH_EDGES = np.array([0.0, 0.36, 0.6, 0.76])
"""Gaps between the upper incisors and canines, in half mouth widths from the centre (frontal view)."""
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
INNER_LIPS = UPPER_INNER_LIP + LOWER_INNER_LIP[-2:0:-1]
WRINKLE_DEPTH = 0.22
"""Darkening at the centre of a wrinkle at intensity 5 (multiplicative)."""
SIDE_BLEND = 0.05
"""Half width (face units) of the band across the midline where a one-sided AU (``AU12L``) fades out."""
EASE = 0.25
"""Fraction of a falloff spent easing in and out; the rest is linear (steepest slope 1 / (1 - EASE))."""


# ---------------------------------------------------------------- profiles and the face frame


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


# ---------------------------------------------------------------- AU designs (intensity 3)


def _gap(g: Geometry, points: np.ndarray, other: Sequence[int]) -> np.ndarray:
    """|v| distance from each point to the curve through ``other`` landmarks, at the same u."""
    return np.abs(np.interp(points[:, 0], *_sorted_uv(g.uv[list(other)])) - points[:, 1])


def _brow_band(g: Geometry, side: int, upper: Sequence[int], lower: Sequence[int],
               vecs: Sequence[tuple[float, float]], reach_in: float, up: float = 0.5) -> np.ndarray:
    """Brow motion: rigid across the brow, fading up the forehead (short of the face oval) and
    down to the upper lid. Downward motion is limited to a share of the brow-lid gap."""
    brow = (g.uv[list(upper)] + g.uv[list(lower)]) / 2
    lid = UPPER_LID[SIDES.index(side)]
    core = 0.03
    down = np.maximum(0.06, _gap(g, brow, lid) - core - 0.025)
    top = g.uv[[i for i in FACE_OVAL if g.uv[i, 1] < g.uv[list(lid), 1].min()]]
    room = brow[:, 1] - np.interp(brow[:, 0], *_sorted_uv(top))
    vecs = [(o, min(d, 0.45 * gap)) for (o, d), gap in zip(vecs, _gap(g, g.uv[list(lower)], lid))]
    return g.band(brow, vecs, side, up=np.clip(0.85 * room, 0.15, up), down=down, core=core,
                  reach_in=reach_in, reach_out=0.2)


def au1(g: Geometry) -> np.ndarray:
    """Inner brow raiser: inner brow ends and the central forehead go up."""
    field = g.zeros()
    for (side, upper), lower in zip(g.sides(BROW), BROW_LOWER):
        vecs = [(0, -0.015), (0, -0.03), (0, -0.055), (0, -0.085), (0, -0.1)]
        field += _brow_band(g, side, upper, lower, vecs, reach_in=0.45)
    return field


def au2(g: Geometry) -> np.ndarray:
    """Outer brow raiser: outer brow ends go up, the brow arches."""
    field = g.zeros()
    for (side, upper), lower in zip(g.sides(BROW), BROW_LOWER):
        vecs = [(0.01, -0.1), (0.005, -0.1), (0, -0.07), (0, -0.03), (0, -0.005)]
        field += _brow_band(g, side, upper, lower, vecs, reach_in=0.1)
    return field


def au4(g: Geometry) -> np.ndarray:
    """Brow lowerer: brows down and together (inner ends most); upper lids narrow slightly."""
    field = g.zeros()
    for (side, upper), lower, lid in zip(g.sides(BROW), BROW_LOWER, UPPER_LID):
        vecs = [(0, 0.03), (-0.005, 0.045), (-0.015, 0.06), (-0.035, 0.075), (-0.05, 0.08)]
        field += _brow_band(g, side, upper, lower, vecs, reach_in=0.25, up=0.4)
        pts = g.uv[list(lid)]
        drop = 0.022 * np.sin(np.linspace(0, np.pi, len(lid))) ** 0.7
        field += g.band(pts, [(0, d) for d in drop], side, up=np.maximum(_gap(g, pts, lower), 0.05),
                        down=np.maximum(0.6 * _gap(g, pts, LOWER_LID[SIDES.index(side)]), 0.03),
                        reach_in=0.05, reach_out=0.1)
    return field


def au5(g: Geometry) -> np.ndarray:
    """Upper lid raiser: the upper lid goes up; the lid fold compresses, the brow stays."""
    field = g.zeros()
    for (side, lid), lower, brow in zip(g.sides(UPPER_LID), LOWER_LID, BROW_LOWER):
        pts = g.uv[list(lid)]
        to_brow = _gap(g, pts, brow)
        lift = np.minimum(0.045 * np.sin(np.linspace(0, np.pi, len(lid))) ** 0.7, 0.4 * to_brow)
        field += g.band(pts, [(0, -a) for a in lift], side, up=np.maximum(to_brow * 0.9, 0.05),
                        down=np.maximum(_gap(g, pts, lower), 0.04), reach_in=0.05, reach_out=0.08)
    return field


def au6(g: Geometry) -> np.ndarray:
    """Cheek raiser: cheeks lift and push the lower lid up (eye narrows from below)."""
    field = g.zeros()
    for (side, lower), upper, cheek in zip(g.sides(LOWER_LID), UPPER_LID, CHEEK):
        pts = g.uv[list(lower)]
        height = _gap(g, pts, upper)
        lift = np.minimum(0.28 * height, 0.04)
        field += g.band(pts, [(0, -a) for a in lift], side, up=np.maximum(0.8 * height, 0.03), down=0.3,
                        reach_in=0.05, reach_out=0.15)
        field += g.bump(g.at(cheek), (0.0, -0.065), side, inward=0.35, outward=0.4, up=0.3, down=0.6, plateau=0.15)
    return field


def au9(g: Geometry) -> np.ndarray:
    """Nose wrinkler: nose sides and wings up, upper lip slightly up, brows slightly down."""
    field = g.bump(g.at(NOSE_TIP), (0, -0.02), inward=0.25, outward=0.25, up=0.4, down=0.3)
    field += g.bump(g.at(UPPER_LIP_MID), (0, -0.03), inward=0.35, outward=0.35, up=0.25, down=0.3)
    for (side, wing), upper, lower in zip(g.sides(NOSE_WING), BROW, BROW_LOWER):
        field += g.bump(g.at(wing), (-0.005, -0.075), side, inward=0.2, outward=0.28, up=0.45, down=0.38, plateau=0.1)
        vecs = [(0, 0.01), (0, 0.015), (0, 0.02), (-0.01, 0.03), (-0.015, 0.035)]
        field += _brow_band(g, side, upper, lower, vecs, reach_in=0.25, up=0.3)
    return field


def au12(g: Geometry) -> np.ndarray:
    """Lip corner puller: corners up and outward (oblique), cheeks bulge up."""
    field = g.zeros()
    for (side, corner), cheek in zip(g.sides(LIP_CORNER), CHEEK):
        field += g.bump(g.at(corner), (0.06, -0.075), side, inward=0.38, outward=0.4, up=0.42, down=0.38)
        field += g.bump(g.at(cheek) + (0, 0.25), (0.0, -0.03), side, inward=0.3, outward=0.35, up=0.35, down=0.35)
    return field


def au15(g: Geometry) -> np.ndarray:
    """Lip corner depressor: lip corners pulled down."""
    field = g.zeros()
    for side, corner in g.sides(LIP_CORNER):
        field += g.bump(g.at(corner), (0.01, 0.065), side, inward=0.32, outward=0.32, up=0.32, down=0.42)
    return field


def au17(g: Geometry) -> np.ndarray:
    """Chin raiser: chin boss and lower lip pushed up; the mouth line bows up."""
    field = g.bump(g.at(CHIN_BOSS), (0, -0.065), inward=0.45, outward=0.45, up=0.3, down=0.42, plateau=0.2)
    field += g.bump(g.at(LOWER_LIP_MID), (0, -0.045), inward=0.33, outward=0.33, up=0.3, down=0.3)
    return field


def au20(g: Geometry) -> np.ndarray:
    """Lip stretcher: corners pulled horizontally outward, lips flatten."""
    field = g.bump(g.at(0), (0, 0.012), inward=0.3, outward=0.3, up=0.15, down=0.1)
    field += g.bump(g.at(17), (0, -0.015), inward=0.3, outward=0.3, up=0.17, down=0.2)
    for side, corner in g.sides(LIP_CORNER):
        field += g.bump(g.at(corner), (0.08, 0.01), side, inward=0.42, outward=0.38, up=0.3, down=0.35)
    return field


def au25(g: Geometry) -> np.ndarray:
    """Lips part: the lower lip goes down, the upper lip up a little, on either side of the seam."""
    lower = g.bump(g.at(LOWER_LIP_MID), (0, 0.06), inward=0.5, outward=0.5, up=0.3, down=0.4, plateau=0.2)
    upper = g.bump(g.at(UPPER_LIP_MID), (0, -0.025), inward=0.5, outward=0.5, up=0.25, down=0.3, plateau=0.2)
    return lower * g.lower_gate() + upper * g.upper_gate()


def au26(g: Geometry) -> np.ndarray:
    """Jaw drop: lower lip, chin and jaw go down, the mouth opens, the face lengthens."""
    mid, seam, boss = g.at(LIP_CORNER)[0], g.at(LOWER_INNER_LIP)[1], g.at(CHIN_BOSS)[1]
    below = min(0.75, float(g.V.max()) - boss - 0.05)
    jaw = g.box((mid - 0.3, mid + 0.3), (seam, boss), (0, 0.17),
                fall_u=0.75, fall_up=seam - g.at(2)[1], fall_down=below)
    return jaw * g.jaw_share(boss)


AU_FIELDS: dict[str, Callable[[Geometry], np.ndarray]] = {
    "AU1": au1, "AU2": au2, "AU4": au4, "AU5": au5, "AU6": au6, "AU9": au9,
    "AU12": au12, "AU15": au15, "AU17": au17, "AU20": au20, "AU25": au25, "AU26": au26,
}
assert tuple(AU_FIELDS) == EDITABLE


def _sorted_uv(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of face-frame points sorted by u, ready for ``np.interp``."""
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]


# ---------------------------------------------------------------- grid windows


def _support(field: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """Grid window (r0, r1, c0, c1) around where a field is non-zero, grown by ``margin`` cells."""
    rows, cols = np.nonzero(np.abs(field).max(axis=-1) > 0)
    h, w = field.shape[:2]
    if rows.size == 0:
        return 0, 0, 0, 0
    return (max(0, rows.min() - margin), min(h, rows.max() + 1 + margin),
            max(0, cols.min() - margin), min(w, cols.max() + 1 + margin))


def _cells(block: tuple[slice, slice], step: int) -> tuple[int, int, int, int]:
    """Grid window (r0, r1, c0, c1) covering a pixel block."""
    rows, cols = block
    return rows.start // step, -(-rows.stop // step), cols.start // step, -(-cols.stop // step)


def _union(windows: Sequence[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    r0, r1, c0, c1 = zip(*windows)
    return min(r0), max(r1), min(c0), max(c1)


# ---------------------------------------------------------------- mouth interior


@dataclass
class MouthModel:
    """What fills a newly opened mouth: a dark cavity with a soft gradient and a hint of upper teeth.

    ``above`` (the seam gate) and ``span`` are per-face grid fields; a pixel of the edited crop
    belongs to the new cavity when its source lies in the seam band and the warp stretched it.
    ``lip_offsets`` lead from each inner-lip landmark to just outside that band, into its own lip
    (zero for other landmarks; see ``WarpEditor.landmark_motion``).
    """

    above: np.ndarray
    span: np.ndarray
    across: np.ndarray
    """Position along the mouth in half mouth widths (0 at its centre), a grid field."""
    lip: np.ndarray
    teeth: np.ndarray | None
    """Colour of the hinted upper teeth; None when the source mouth is open (its own teeth show)."""
    unit: float
    half_mouth_px: float
    lip_offsets: np.ndarray

    @classmethod
    def of(cls, face: AlignedFace, geometry: Geometry, step: int) -> MouthModel:
        mask = np.zeros(face.image.shape[:2], np.uint8)
        xy = face.landmarks.xy
        cv2.fillPoly(mask, [np.round(xy[list(OUTER_LIPS)]).astype(np.int32)], 1)
        cv2.fillPoly(mask, [np.round(xy[list(INNER_LIPS)]).astype(np.int32)], 0)
        lip = np.median(face.image[mask > 0], axis=0) if mask.any() else np.array([150.0, 90, 90])
        ring = cv2.dilate(mask, np.ones((25, 25), np.uint8)) > mask
        bright = np.percentile(face.image[ring], 90, axis=0)
        light = min(1.0, 0.45 + 0.55 * float(bright.mean()) / 220)
        teeth = 0.8 * np.array([228.0, 220, 204]) * light + 0.2 * bright if geometry.mouth_gap < 0.02 else None
        offsets = np.zeros_like(xy)
        offsets[list(UPPER_INNER_LIP[1:-1])] = -1.5 * step * geometry.frame.ey
        offsets[list(LOWER_INNER_LIP[1:-1])] = 1.5 * step * geometry.frame.ey
        across = (geometry.U - geometry.mouth_center) / geometry.mouth_half
        return cls(geometry.above_seam().astype(np.float32), geometry.span.astype(np.float32),
                   across.astype(np.float32), lip.astype(np.float32), teeth, geometry.frame.unit,
                   geometry.mouth_half * geometry.frame.unit, offsets)

    def paint(self, out: np.ndarray, back: np.ndarray, window: tuple[int, int, int, int], step: int) -> None:
        """Composite the cavity into ``out`` (in place) where the warp opened the seam band."""
        r0, _, c0, _ = window
        gy, gx = np.indices(back.shape[:2], dtype=np.float32)
        x, y = gx + c0 + back[..., 0] / step, gy + r0 + back[..., 1] / step
        jac = jacobian(back, step)
        stretch = 1.0 / np.maximum(jac[..., 0] * jac[..., 3] - jac[..., 1] * jac[..., 2], 1e-3)
        fields = np.dstack([sample(self.above, x, y), sample(self.span, x, y), stretch, sample(self.across, x, y)])
        rows, cols = np.nonzero((fields[..., 2] > 1.15) & (fields[..., 1] > 0) & (np.abs(fields[..., 0] - 0.5) < 0.45))
        if rows.size == 0:
            return
        a0, a1, b0, b1 = max(rows.min() - 2, 0), rows.max() + 3, max(cols.min() - 2, 0), cols.max() + 3
        block, (y0, x0) = upsample(fields[a0:a1, b0:b1], r0 + a0, c0 + b0, step, out.shape[0])
        color, alpha = self._cavity(*np.moveaxis(block, -1, 0))
        region = out[y0:y0 + block.shape[0], x0:x0 + block.shape[1]]
        region[:] = np.clip(region + (color - region) * alpha[..., None] + 0.5, 0, 255).astype(np.uint8)

    def _cavity(self, above: np.ndarray, span: np.ndarray, stretch: np.ndarray,
                across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colour and opacity of the cavity from where each pixel's source lies across the seam band.

        ``above`` runs from 1 at the upper lip to 0 at the lower lip: the cavity shades from dark
        (top) to tongue (bottom); the upper teeth show as a band of fixed height under the upper
        lip, with faint gaps between the incisors and canines (``across``: position along the mouth).
        """
        alpha = smoothstep((above - 0.06) / 0.2) * smoothstep((0.94 - above) / 0.2)
        alpha *= smoothstep((stretch - 1.15) / 0.6) * smoothstep(span / 0.2)
        tongue = smoothstep((0.55 - above) / 0.55)
        color = self.lip * (0.18 + 0.3 * tongue[..., None])
        if self.teeth is not None:
            inside = alpha > 0.5
            top = _smooth_columns(np.where(inside.any(axis=0), inside.argmax(axis=0), len(alpha)).astype(float))
            height = np.minimum(0.05 * self.unit, 0.4 * _smooth_columns(inside.sum(axis=0).astype(float)))
            depth = np.arange(len(alpha))[:, None] - top
            tooth = smoothstep((depth + 2) / 2) * smoothstep((height - depth) / 2.5) * smoothstep((span - 0.25) / 0.5)
            shade = (0.8 + 0.2 * smoothstep((depth + 1) / np.maximum(height, 1))) * (0.7 + 0.3 * span)
            gaps = np.abs(np.abs(across)[..., None] - TOOTH_EDGES).min(axis=-1) * self.half_mouth_px
            shade *= 1 - 0.18 * np.exp(-0.5 * gaps**2)
            color += (self.teeth * shade[..., None] - color) * tooth[..., None]
        return color, alpha


def _smooth_columns(values: np.ndarray, width: int = 9) -> np.ndarray:
    """Moving average along a row of per-column values (edges repeated)."""
    padded = np.pad(values, width // 2, mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


# ---------------------------------------------------------------- wrinkles


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


# ---------------------------------------------------------------- the editor


@dataclass
class FaceWork:
    """Per-face precompute: one coarse displacement basis per AU, the grid window it (and its
    wrinkles) touch, the mouth model and the wrinkle maps."""

    bases: dict[str, np.ndarray]
    supports: dict[str, tuple[int, int, int, int]]
    mouth: MouthModel
    wrinkles: Wrinkles


@dataclass
class Motion:
    """An edit's capped forward displacement on a window of the coarse grid (rows r0:r1, cols c0:c1)."""

    disp: np.ndarray
    window: tuple[int, int, int, int]


class WarpEditor(Editor):
    """Geometric FACS AU editor: smooth one-to-one warps designed from the FACS actions.

    ``grid_step``: coarse grid spacing in crop pixels; ``min_jacobian``: smallest allowed local area
    ratio of the warp (compression cap); ``wrinkles`` / ``mouth_interior``: shading and mouth
    cavity synthesis on/off; ``cache_faces``: how many faces' precomputes to keep; ``lock``: regions
    kept in their source shape (``Editor``).
    """

    name = "warp"

    def __init__(self, grid_step: int = 4, min_jacobian: float = 0.3, wrinkles: bool = True,
                 mouth_interior: bool = True, cache_faces: int = 4, lock: Sequence[str] = ()) -> None:
        require(grid_step >= 1 and 0 < min_jacobian < 1,
                f"warp editor: grid_step must be >= 1 and min_jacobian in (0, 1), got {grid_step} and {min_jacobian}")
        super().__init__(lock)
        self.grid_step = grid_step
        self.min_jacobian = min_jacobian
        self.wrinkles = wrinkles
        self.mouth_interior = mouth_interior
        self.cache_faces = cache_faces
        self._cache: OrderedDict[bytes, FaceWork] = OrderedDict()

    # -- public API

    def render(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[np.ndarray]:
        work = self.prepare(face)
        return [self._render(face, work, edit) for edit in edits]

    def prepare(self, face: AlignedFace) -> FaceWork:
        """The face's precompute, cached by its landmarks and a sparse sample of its pixels."""
        key = b"".join([face.landmarks.points.tobytes(), face.image[::31, ::31].tobytes(),
                        str(face.image.shape).encode()])
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        work = self._precompute(face)
        self._cache[key] = work
        while len(self._cache) > self.cache_faces:
            self._cache.popitem(last=False)
        return work

    def motion(self, work: FaceWork, edit: AUEdit) -> Motion | None:
        """The edit's displacement on the window its AUs touch, attenuated where it would compress too much."""
        active = [k for k in edit.values if k in work.bases]
        if not active:
            return None
        r0, r1, c0, c1 = _union([work.supports[k] for k in active])
        disp = sum(edit.values[k] * work.bases[k][r0:r1, c0:c1] for k in active)
        return Motion(cap(disp.astype(np.float32), self.grid_step, self.min_jacobian), (r0, r1, c0, c1))

    def landmark_motion(self, face: AlignedFace, edit: AUEdit) -> np.ndarray:
        """(478, 2) displacement in crop pixels that the final (capped) warp gives each landmark.

        An inner-lip landmark sits on the seam band that lip-parting warps stretch open (and paint
        as the mouth cavity), so when the band opens it reports the motion of its own lip, sampled
        just outside the band.
        """
        work = self.prepare(face)
        motion = self.motion(work, edit)
        if motion is None:
            return np.zeros((len(face.landmarks.points), 2))
        xy = face.landmarks.xy
        at_landmark = self._sample_motion(motion, xy)
        outward = work.mouth.lip_offsets
        parting = np.einsum("ij,ij->i", self._sample_motion(motion, xy + outward) - at_landmark, outward)
        scale = np.maximum(parting, 0.0) / np.maximum(np.einsum("ij,ij->i", outward, outward), 1e-9)
        return at_landmark + scale[:, None] * outward

    def _sample_motion(self, motion: Motion, xy: np.ndarray) -> np.ndarray:
        """The motion's displacement at crop-pixel points (zero outside its window)."""
        r0, _, c0, _ = motion.window
        grid = ((xy - (self.grid_step - 1) / 2) / self.grid_step - (c0, r0)).astype(np.float32)
        moved = cv2.remap(motion.disp, grid[None, :, 0], grid[None, :, 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return moved[0].astype(np.float64)

    # -- internals

    def _precompute(self, face: AlignedFace) -> FaceWork:
        geometry = Geometry(face.image, face.landmarks, self.grid_step)
        wrinkles = Wrinkles.of(geometry, face.size)
        gates = {False: geometry.face_gate(), True: geometry.face_gate(drop=JAW_DROP_ROOM)}
        bases, supports = {}, {}
        for key, design in AU_FIELDS.items():
            field = design(geometry) * gates[key == "AU26"] / DESIGN_INTENSITY
            bases[key] = geometry.frame.to_pixels(field).astype(np.float32)
            windows = [_support(bases[key], margin=2)]
            if key in wrinkles.maps:
                windows.append(_cells(wrinkles.maps[key][0], self.grid_step))
            supports[key] = _union(windows)
        left = geometry.left_share()[..., None]
        for key in BILATERAL:  # one-sided AUs (AU12L, AU12R): the bilateral field, one side of the midline
            bases[key + "L"] = (bases[key] * left).astype(np.float32)
            bases[key + "R"] = (bases[key] * (1 - left)).astype(np.float32)
            supports[key + "L"] = supports[key + "R"] = supports[key]
        return FaceWork(bases, supports, MouthModel.of(face, geometry, self.grid_step), wrinkles)

    def _render(self, face: AlignedFace, work: FaceWork, edit: AUEdit) -> np.ndarray:
        motion = self.motion(work, edit)
        if motion is None:
            return face.image.copy()
        r0, _, c0, _ = motion.window
        source = work.wrinkles.apply(face.image, edit) if self.wrinkles else face.image
        out, back = warp_window(face.image, motion.disp, (r0, c0), self.grid_step, source)
        if self.mouth_interior:
            work.mouth.paint(out, back, motion.window, self.grid_step)
        return out

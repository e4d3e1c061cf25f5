"""AU change between a face and an edit of it, read from how its landmarks moved.

An edit is judged by the *motion* of the source's own landmarks, not by comparing two absolute
estimates: absolute readings carry each person's resting anatomy (a mouth that turns down at rest
reads as "AU15" and a smile then reads as that AU15 going away).

How a change is read
1. The edit's landmarks are fitted onto the source's by a robust similarity on head-rigid points
   (nose bridge, eye corners, temples; iteratively reweighted so points that an edit moves drop out)
   and their displacement is expressed in the source's frontal frame (``geometry.frontalize``:
   head rotation removed, unit = the subject's inter-ocular distance, IOD, y down). This is the
   skin's motion relative to the skull.
2. Each AU is read along the *axis* its muscle moves its landmarks, per side of the face
   (left/right from the person's point of view): e.g. the lip corners' vertical motion. Lengths are
   divided by ``UNITS`` (IOD per FACS intensity step, from published motion ranges), so the numbers
   approximate FACS steps (a moderate, C-level action ~3).
3. Antagonists share an axis: lip corners up is AU12, down is AU15; inner brows up is AU1, down
   (with drawing together) is AU4; outer-brow lowering belongs to AU4, not to AU2 relaxing; lips
   closing is an AU17/AU24-like closure, not AU25 relaxing. Landmarks only see the net motion, so
   it is attributed: to the member of the pair that was requested (signed: ``AU12=-3`` that pulls
   the corners down reads AU12 -3), otherwise split by direction (up -> AU12, down -> AU15). So a
   smile never reads as "AU15 decreasing".

Axes (per side unless central; heights are upward motion, IOD):
  AU1   inner brow up (positive part, or signed when AU1 is requested)
  AU2   outer brow up (positive part, or signed when AU2 is requested)
  AU4   mean of: inner brow down (negative part of the AU1 axis, signed when AU4 is requested)
        / ``UNIT_AU4_DOWN``, and inner brow drawn toward the midline / ``UNITS["AU4"]``
  AU5   upper-lid centre up (signed: lid lowering reads negative)
  AU6   lower-lid centre and upper cheek up (signed)
  AU9   nostril wings up (signed)
  AU12  lip corner up (positive part / signed when requested);  AU15 the negative part
  AU20  lip corner outward, less AU12's share (its pull is oblique, 45 degrees: as far out as up) (signed)
  AU17  lower-lip bottom up relative to the chin bottom (central; its lowering, which lips parting
        and a jaw drop cause, counts only when AU17 is requested)
  AU25  inner-lip gap opening (per side; closing counts only when AU25 is requested)
  AU26  chin bottom (menton) down (central, signed)

Leakage is the motion of AUs that are physically independent of the request: ``COUPLED`` lists,
for each AU, the AUs that act on the same landmarks or are anatomically entailed by it (FACS
manual appearance changes), and ``leakage_aus`` excludes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from complexface.au import BILATERAL, EDITABLE, SIDES, parse_edit, split_side
from complexface.faces.landmarks import IRIS_CENTERS
from complexface.measure.au_estimate import UNITS as ESTIMATE_UNITS
from complexface.measure.geometry import PointsLike, as_points, rigid_fit, squeeze, weighted_similarity

UNITS: dict[str, float] = {**ESTIMATE_UNITS, "AU9": 0.016}
"""Landmark motion per FACS intensity step (IOD): the absolute estimate's units (AU4: inner brows drawn
together, per side), with AU9 as the nostril wings' lift (the estimate uses a ratio to the nose length)."""
UNIT_AU4_DOWN = 0.020
"""AU4's other half: inner-brow lowering per FACS step (IOD)."""

HALVES = ("R", "L")
"""The person's side shown in the image-left and the image-right half of a frontal photo."""
SIDED = tuple(au + side for au in BILATERAL for side in SIDES)
"""Per-side readings (``AU12L``, ``AU12R``) of the bilateral AUs; AU17, AU25 and AU26 act on the midline."""

# MediaPipe face-mesh indices as (person's right = image left, person's left = image right).
INNER_BROW = ((107, 66, 55, 65), (336, 296, 285, 295))
OUTER_BROW = ((70, 63, 46, 53), (300, 293, 276, 283))
UPPER_LID = ((159, 158, 160), (386, 385, 387))
LOWER_LID_AND_CHEEK = ((145, 144, 153, 117, 118, 101, 50), (374, 373, 380, 346, 347, 330, 280))
NOSE_WING = ((129, 64, 48), (358, 294, 278))
LIP_CORNER = ((61,), (291,))
INNER_LIPS = (((82, 87), (13, 14)), ((312, 317), (13, 14)))
"""(upper, lower) inner-lip pairs per side: the side's pair and the centre pair."""
LOWER_LIP_BOTTOM, MENTON = 17, 152
STABLE = (168, 6, 197, 195, 133, 362, 33, 263, 127, 356, 162, 389, 21, 251, 234, 454)
"""Points an expression barely moves (nose bridge, eye corners, temples): the edit is aligned on these."""
OUTLIER = 0.03
"""A stable point that moved by this share of the face's size (about 2% of the IOD) no longer steers the fit."""

COUPLED: dict[str, frozenset[str]] = {
    "AU1": frozenset({"AU2", "AU4"}),
    "AU2": frozenset({"AU1", "AU4"}),
    "AU4": frozenset({"AU1", "AU2", "AU9"}),
    "AU5": frozenset(),
    "AU6": frozenset({"AU9", "AU12"}),
    "AU9": frozenset({"AU4", "AU6"}),
    "AU12": frozenset({"AU6", "AU15", "AU20"}),
    "AU15": frozenset({"AU12", "AU17", "AU20", "AU26"}),
    "AU17": frozenset({"AU15", "AU25", "AU26"}),
    "AU20": frozenset({"AU12", "AU15", "AU25"}),
    "AU25": frozenset({"AU17", "AU20", "AU26"}),
    "AU26": frozenset({"AU15", "AU17", "AU25"}),
}
"""AUs that share landmarks with an AU or that it entails (symmetric): brows (AU1, AU2, AU4; AU9's
procerus lowers the inner brows), cheeks (AU6; raised by AU9 and by a strong AU12), lip corners
(AU12, AU15, AU20; AU17 pushes the lower lip under AU15's corners), lips and jaw (AU25 opens with
AU26 and AU20, closes with AU17; a jaw drop lowers the corners and stretches the chin)."""
assert all(a in COUPLED[b] for a, coupled in COUPLED.items() for b in coupled)


def leakage_aus(request: object) -> list[str]:
    """The readings whose motion counts as leakage for a request (anything ``parse_edit`` reads): every AU
    that is neither requested nor coupled to a requested AU, and the other side of an AU requested on one
    side only (``AU12L=3``: ``AU12R`` should not move)."""
    sides = _requested_sides(parse_edit(request).values)
    independent = [au for au in EDITABLE if au not in sides and not any(au in COUPLED[a] for a in sides)]
    return independent + [au + side for au, on in sides.items() if on != set(SIDES) for side in SIDES
                          if side not in on]


def _requested_sides(request: Mapping[str, float] | None) -> dict[str, set[str]]:
    """AU -> the sides a request asks it on (``AU12`` both, ``AU12L`` only L)."""
    asked: dict[str, set[str]] = {}
    for key in request or {}:
        base, side = split_side(key)
        asked.setdefault(base, set()).update({side} if side else SIDES)
    return asked


@dataclass(frozen=True)
class Motion:
    """Landmark displacement of edits relative to their sources, in each source's frontal frame."""

    delta: np.ndarray
    """(N, 478, 3) edit minus source in the source's frontal frame (IOD units), after the robust rigid
    alignment."""

    def __getitem__(self, index: int) -> Motion:
        """The motion of one pair, still (1, 478, 3)."""
        return Motion(self.delta[index:index + 1])


def motion(source: PointsLike, edited: PointsLike) -> Motion:
    """Skull-relative landmark motion of ``edited`` against ``source`` (pairs broadcast like numpy)."""
    src, _ = as_points(source)
    dst, _ = as_points(edited)
    src, dst = np.broadcast_arrays(src, dst)
    aligned = _align(dst, src)
    rotation = rigid_fit(src)[0]  # the frontal frame's rotation; lengths in the source's own IOD
    iod = np.linalg.norm(src[:, IRIS_CENTERS[1]] - src[:, IRIS_CENTERS[0]], axis=-1)
    return Motion(np.einsum("nij,nkj->nki", rotation, aligned - src) / iod[:, None, None])


def _align(edited: np.ndarray, source: np.ndarray, iterations: int = 6) -> np.ndarray:
    """``edited`` mapped onto ``source`` by a similarity fitted on STABLE, iteratively reweighted
    (Tukey's biweight, cut-off ``OUTLIER`` x the face's size) so that points an expression moves drop out
    of the fit instead of tilting it."""
    ids = list(STABLE)
    size = np.linalg.norm(source[:, ids].std(axis=1), axis=-1)
    weights = np.ones((len(source), len(ids)))
    for _ in range(iterations):
        rotation, scale, shift = weighted_similarity(edited[:, ids], source[:, ids], weights)
        fitted = scale[:, None, None] * np.einsum("nij,nkj->nki", rotation, edited[:, ids]) + shift[:, None]
        residual = np.linalg.norm(fitted - source[:, ids], axis=-1) / (OUTLIER * size[:, None])
        weights = np.clip(1.0 - residual**2, 0.0, None) ** 2 + 1e-6
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rotation, edited) + shift[:, None]


def _up(m: Motion, ids) -> np.ndarray:
    """Mean upward motion (IOD) of ``ids`` per face."""
    return -m.delta[:, list(ids), 1].mean(axis=1)


def _outward(m: Motion, ids, side: int) -> np.ndarray:
    """Mean motion away from the midline of ``ids`` on ``side`` (0: image left, 1: image right)."""
    return (1 if side else -1) * m.delta[:, list(ids), 0].mean(axis=1)


def _gap_opening(m: Motion, pairs) -> np.ndarray:
    """Mean opening (lower lip down relative to upper) of (upper, lower) landmark pairs."""
    return np.mean([m.delta[:, lower, 1] - m.delta[:, upper, 1] for upper, lower in pairs], axis=0)


def _attribute(value: np.ndarray, plus: str, minus: str | None, asked: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """Split signed axis motion into (``plus`` AU's share, ``minus`` AU's share).

    The requested member of the pair takes the whole signed motion. Otherwise the positive part goes
    to ``plus`` and the negative part to ``minus``; with ``minus`` None (the motion belongs to no AU of
    the 12, e.g. lips closing) the negative part is dropped."""
    zero = np.zeros_like(value)
    if plus in asked and minus not in asked:
        return value, zero
    if minus is not None and minus in asked and plus not in asked:
        return zero, -value
    return np.maximum(value, 0.0), zero if minus is None else np.maximum(-value, 0.0)


def _side_readings(m: Motion, side: int, asked: dict[str, set[str]]) -> dict[str, np.ndarray]:
    on = {au for au, sides in asked.items() if HALVES[side] in sides}
    inner_up, inner_down = _attribute(_up(m, INNER_BROW[side]), "AU1", "AU4", on)
    outer_up, _ = _attribute(_up(m, OUTER_BROW[side]), "AU2", None, on)
    together = -_outward(m, INNER_BROW[side], side)
    corner_up, corner_down = _attribute(_up(m, LIP_CORNER[side]), "AU12", "AU15", on)
    opening, _ = _attribute(_gap_opening(m, INNER_LIPS[side]), "AU25", None, on)
    return {
        "AU1": inner_up / UNITS["AU1"], "AU2": outer_up / UNITS["AU2"],
        "AU4": (inner_down / UNIT_AU4_DOWN + together / UNITS["AU4"]) / 2,
        "AU5": _up(m, UPPER_LID[side]) / UNITS["AU5"], "AU6": _up(m, LOWER_LID_AND_CHEEK[side]) / UNITS["AU6"],
        "AU9": _up(m, NOSE_WING[side]) / UNITS["AU9"],
        "AU12": corner_up / UNITS["AU12"], "AU15": corner_down / UNITS["AU15"],
        "AU20": (_outward(m, LIP_CORNER[side], side) - corner_up) / UNITS["AU20"],
        "AU25": opening / UNITS["AU25"],
    }


def readings(m: Motion, request: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """The 12 AU changes (mean of the sides) and the per-side ones (``AU12L``, ...), arrays per face."""
    asked = _requested_sides(request)
    per_side = [_side_readings(m, side, asked) for side in (0, 1)]
    out = {au + HALVES[half]: per_side[half][au] for au in BILATERAL for half in (0, 1)}
    chin, _ = _attribute(m.delta[:, MENTON, 1] - m.delta[:, LOWER_LIP_BOTTOM, 1], "AU17", None, set(asked))
    chin = chin / UNITS["AU17"]
    jaw = m.delta[:, MENTON, 1] / UNITS["AU26"]
    both = {au: (per_side[0][au] + per_side[1][au]) / 2 for au in per_side[0]}
    values = {**both, "AU17": chin, "AU26": jaw}
    return {**{au: values[au] for au in EDITABLE}, **{k: out[k] for k in SIDED}}


def _asked(request: object) -> Mapping[str, float] | None:
    return request if isinstance(request, Mapping) or request is None else dict(parse_edit(request).values)


def change(source: PointsLike, edited: PointsLike, request: object = None,
           sides: bool = False) -> dict[str, float] | dict[str, np.ndarray]:
    """Measured AU change of ``edited`` against ``source`` (approximate FACS steps, module docstring).

    ``request``: the edit that was asked for (anything ``parse_edit`` reads, or a mapping that may hold
    per-side keys such as ``AU12L``), used only to attribute antagonist motion; ``sides`` adds the
    per-side readings (``AU1L``, ``AU1R``, ...). Pairs broadcast like numpy.
    """
    _, single_src = as_points(source)
    _, single_dst = as_points(edited)
    values = readings(motion(source, edited), _asked(request))
    keep = [*EDITABLE, *SIDED] if sides else list(EDITABLE)
    return squeeze({k: values[k] for k in keep}, single_src and single_dst)


def changes(source: PointsLike, edited: PointsLike, requests: Sequence[object],
            sides: bool = False) -> list[dict[str, float]]:
    """``change`` of one source against many edits, each with its own request (one alignment pass)."""
    moved = motion(source, edited)
    keep = [*EDITABLE, *SIDED] if sides else list(EDITABLE)
    out = []
    for i, request in enumerate(requests):
        values = readings(moved[i], _asked(request))
        out.append({k: float(values[k][0]) for k in keep})
    return out


def au_errors(measured: Mapping[str, float], target: object) -> dict[str, float]:
    """Measured minus target change for all 12 AUs; ``target`` is anything ``parse_edit`` reads
    (AUs absent from it count as 0)."""
    edit = parse_edit(target)
    return {au: float(measured[au]) - float(edit.values.get(au, 0.0)) for au in EDITABLE}


def au_mse(measured: Mapping[str, float], target: object) -> float:
    """Mean squared error over the 12 AUs between a measured and a target change (MagicFace's AU MSE)."""
    return float(np.mean([e**2 for e in au_errors(measured, target).values()]))

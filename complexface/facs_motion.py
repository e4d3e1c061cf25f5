"""How each editable FACS AU shows as landmark motion: the axis it moves its landmarks along and the size of
one intensity step, from published measurements of real facial motion.

Both sides of the project use this one definition: the warp editor scales each AU's displacement field so
that its landmarks move by ``intensity x UNITS[AU]`` on every face (``editors/warp``), and the measurer
reads an edit's AU change as the landmark motion along these axes divided by the same units
(``measure/au_change``). Motion is given in the face's frontal frame: x towards the image right, y down,
unit = the subject's inter-ocular distance (IOD, iris centre to iris centre).

Axes (per side unless central; heights are upward motion):
  AU1   inner brow up (positive part, or signed when AU1 is requested)
  AU2   outer brow up (positive part, or signed when AU2 is requested)
  AU4   mean of: inner brow down (negative part of the AU1 axis, signed when AU4 is requested)
        / ``UNIT_AU4_DOWN``, and inner brow drawn toward the midline / ``UNITS["AU4"]``
  AU5   upper-lid centre up (signed: lid lowering reads negative)
  AU6   lower-lid centre and upper cheek up (signed)
  AU9   nostril wings up (signed)
  AU12  lip corner up (positive part / signed when requested);  AU15 the negative part
  AU20  lip corner outward, less AU12's share (its pull is oblique, about 45 degrees: as far out as up)
  AU17  lower-lip bottom up relative to the chin bottom (central; its lowering, which lips parting and a
        jaw drop cause, counts only when AU17 is requested)
  AU25  inner-lip gap opening (per side; closing counts only when AU25 is requested)
  AU26  chin bottom (menton) down (central, signed)

Antagonists share an axis (corners up is AU12, down AU15; inner brows up AU1, down AU4) and landmarks only
see the net motion, so it is attributed: to the member of the pair that was requested (signed: ``AU12=-3``
reads AU12 -3), otherwise by direction; a smile never reads as "AU15 decreasing".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from complexface.au import BILATERAL, EDITABLE, SIDES, split_side

IOD_MM = 63.0
"""Adult inter-ocular (interpupillary) distance, mm: mean 63 mm (Dodgson 2004, "Variation and extrema of
human interpupillary distance", Proc. SPIE 5291)."""

UNITS: dict[str, float] = {
    # inner / outer brow raise: 1.76 mm a step, 8.8 mm at E. Maximal frontalis contraction raises the
    # mid-brow by 7.6-9.0 mm (Cruz & Cruz 2004, Arq Bras Oftalmol 67:237, 81 subjects; brow range also
    # Sclafani & Jung 2010, Arch Facial Plast Surg 12:123).
    "AU1": 0.028, "AU2": 0.028,
    # brows drawn together: 0.95 mm a step per brow (4.7 mm at E); lowering in UNIT_AU4_DOWN. Design values
    # of the same order as the raise (corrugator excursions are smaller than frontalis ones).
    "AU4": 0.015,
    # upper lid raise: 0.76 mm a step, 3.8 mm at E: about the 4 mm a resting lid covers above the pupil
    # (margin-reflex distance MRD1), i.e. from covering the upper iris to sclera above it.
    "AU5": 0.012,
    # lower lid and upper cheek up: 0.95 mm a step, 4.7 mm at E (design value: a few mm of cheek lift).
    "AU6": 0.015,
    # nostril wings up: 1.0 mm a step, 5 mm at E (design value).
    "AU9": 0.016,
    # lip corner up: 1.76 mm a step, 8.8 mm at E. Spontaneous smiles widen the mouth by 27% with the corners
    # moving out and up at about 47 degrees (Tarantili, Halazonetis & Spyropoulos 2005, Am J Orthod
    # Dentofacial Orthop 128:8): on a ~50 mm mouth, 6.8 mm out and 7.2 mm up a corner; such a smile taken as
    # D (4) gives 1.8 mm a step. Maximal smiles move the commissure most of all facial movements (Coulson,
    # Croxson & Gilleard 2000, Ann Otol Rhinol Laryngol 109:478; Giovanoli et al. 2003, Br J Plast Surg 56:644).
    "AU12": 0.028,
    # lip corner down: 1.0 mm a step, 5 mm at E (design value, smaller than the smile's lift).
    "AU15": 0.016,
    # lower lip up against the chin: 1.26 mm a step, 6.3 mm at E (design value).
    "AU17": 0.020,
    # lip corner outward (beyond AU12's oblique share): 1.26 mm a step per corner, 6.3 mm at E (design value,
    # below the smile's lateral pull).
    "AU20": 0.020,
    # inner-lip gap: 1.9 mm a step, 9.5 mm at E (lips apart, teeth showing, jaw still).
    "AU25": 0.030,
    # menton down: 3.8 mm a step, 19 mm at E: about half the 40-50 mm maximal interincisal opening of
    # adults; a wider, stretched opening is AU27 (not editable).
    "AU26": 0.060,
}
"""Landmark motion per FACS intensity step (IOD), so intensities approximate FACS A-E = 1-5 (a moderate,
C-level action ~3). Values in mm at an IOD of ``IOD_MM``."""
UNIT_AU4_DOWN = 0.020
"""AU4's other half: inner-brow lowering per FACS step (IOD; 1.26 mm, 6.3 mm at E)."""
assert tuple(UNITS) == EDITABLE

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


def requested_sides(request: Mapping[str, float] | None) -> dict[str, set[str]]:
    """AU -> the sides a request asks it on (``AU12`` both, ``AU12L`` only L)."""
    asked: dict[str, set[str]] = {}
    for key in request or {}:
        base, side = split_side(key)
        asked.setdefault(base, set()).update({side} if side else SIDES)
    return asked


def _up(delta: np.ndarray, ids) -> np.ndarray:
    """Mean upward motion of ``ids`` per face."""
    return -delta[:, list(ids), 1].mean(axis=1)


def _outward(delta: np.ndarray, ids, side: int) -> np.ndarray:
    """Mean motion away from the midline of ``ids`` on ``side`` (0: image left, 1: image right)."""
    return (1 if side else -1) * delta[:, list(ids), 0].mean(axis=1)


def _gap_opening(delta: np.ndarray, pairs) -> np.ndarray:
    """Mean opening (lower lip down relative to upper) of (upper, lower) landmark pairs."""
    return np.mean([delta[:, lower, 1] - delta[:, upper, 1] for upper, lower in pairs], axis=0)


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


def _side_readings(delta: np.ndarray, side: int, asked: dict[str, set[str]]) -> dict[str, np.ndarray]:
    on = {au for au, sides in asked.items() if HALVES[side] in sides}
    inner_up, inner_down = _attribute(_up(delta, INNER_BROW[side]), "AU1", "AU4", on)
    outer_up, _ = _attribute(_up(delta, OUTER_BROW[side]), "AU2", None, on)
    together = -_outward(delta, INNER_BROW[side], side)
    corner_up, corner_down = _attribute(_up(delta, LIP_CORNER[side]), "AU12", "AU15", on)
    opening, _ = _attribute(_gap_opening(delta, INNER_LIPS[side]), "AU25", None, on)
    return {
        "AU1": inner_up / UNITS["AU1"], "AU2": outer_up / UNITS["AU2"],
        "AU4": (inner_down / UNIT_AU4_DOWN + together / UNITS["AU4"]) / 2,
        "AU5": _up(delta, UPPER_LID[side]) / UNITS["AU5"],
        "AU6": _up(delta, LOWER_LID_AND_CHEEK[side]) / UNITS["AU6"],
        "AU9": _up(delta, NOSE_WING[side]) / UNITS["AU9"],
        "AU12": corner_up / UNITS["AU12"], "AU15": corner_down / UNITS["AU15"],
        "AU20": (_outward(delta, LIP_CORNER[side], side) - corner_up) / UNITS["AU20"],
        "AU25": opening / UNITS["AU25"],
    }


def readings(delta: np.ndarray, request: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """The 12 AU changes (mean of the sides) and the per-side ones (``AU12L``, ...), arrays per face.

    ``delta``: (N, 478, >=2) landmark motion in the frontal frame (IOD units, y down); ``request``: the
    edit asked for (a mapping that may hold per-side keys), used only to attribute antagonist motion.
    """
    asked = requested_sides(request)
    per_side = [_side_readings(delta, side, asked) for side in (0, 1)]
    out = {au + HALVES[half]: per_side[half][au] for au in BILATERAL for half in (0, 1)}
    chin, _ = _attribute(delta[:, MENTON, 1] - delta[:, LOWER_LIP_BOTTOM, 1], "AU17", None, set(asked))
    values = {**{au: (per_side[0][au] + per_side[1][au]) / 2 for au in per_side[0]},
              "AU17": chin / UNITS["AU17"], "AU26": delta[:, MENTON, 1] / UNITS["AU26"]}
    return {**{au: values[au] for au in EDITABLE}, **{k: out[k] for k in SIDED}}

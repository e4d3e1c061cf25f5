"""Landmark-based estimates of the 12 editable FACS AUs.

Every AU is read from simple geometric quantities of the frontal frame of
``geometry.frontalize`` (head rotation removed, unit = the subject's inter-ocular distance,
IOD), averaged over both sides of the face. Each quantity is taken relative to the symmetric
neutral template (``d = q(face) - q(template)``) and divided by its ``UNITS`` entry (IOD per
FACS intensity step), so the template scores 0 and the numbers approximate FACS A-E = 1-5:
a moderate (C) real expression is about 3, a maximal one about 5.

Quantities (heights are measured up from the eye-corner line):
  AU1  inner-brow height plus its move toward the midline (``lift - half_gap``); with AU4 this
       splits the inner-brow motion into AU1's straight-up and AU4's down-and-in (45 deg) directions
  AU2  outer-brow height
  AU4  inner brows drawn toward the midline (``-half inter-brow gap``)
  AU5  upper-lid centre height above the iris centre
  AU6  mean height of the lower-lid centre and upper-cheek points
  AU9  nostril-wing height above the nose tip / (eye-line to nose-tip length)  [ratio]
  AU12 lip-corner height relative to the top of the upper lip (its vermilion border at the midline
       and the two peaks of the Cupid's bow), positive part: ``max(d_lift, 0)``; the upper lip
       stays when the lips part, so parting does not read as a smile
  AU15 the same height, negative part: ``max(-d_lift, 0)`` (AU12 and AU15 move the same
       landmark in opposite directions; landmarks only see the net)
  AU17 lower-lip bottom height above the chin bottom (menton): the chin boss pushes the lower
       lip up while the jaw (and the menton) stays; a jaw drop moves both and cancels
  AU20 half mouth width not explained by AU12's oblique (45 deg) pull: ``d_spread - max(d_lift, 0)``
  AU25 inner-lip gap (FACS codes 25 whenever the lips part, so a jaw drop raises it too)
  AU26 nose base (subnasale) to chin distance

Absolute estimates carry each person's resting anatomy (about +-1 unit between neutral
faces). To judge an edit use ``au_change.change(source, edited)``, which reads how the source's
own landmarks moved.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from complexface.facs_motion import UNITS as MOTION_UNITS
from complexface.measure.geometry import PointsLike, as_points, frontalize, load_template, squeeze

# MediaPipe face-mesh indices, image-left side first.
EYE_CORNERS = (33, 133, 362, 263)
INNER_BROW = ((107, 66, 55, 65), (336, 296, 285, 295))
OUTER_BROW = ((70, 63, 46, 53), (300, 293, 276, 283))
UPPER_LID = (159, 386)
IRIS = (468, 473)
LOWER_LID = ((145, 144, 153), (374, 373, 380))
CHEEK = ((117, 118, 101, 50), (346, 347, 330, 280))
ALAR = (129, 358)
NOSE_TIP, SUBNASALE, CHIN, LOWER_LIP_BOTTOM = 1, 2, 152, 17
UPPER_LIP_TOP = (0, 37, 267)
"""The upper lip's vermilion border at the midline and the peaks of the Cupid's bow."""
LIP_CORNERS = (61, 291)
INNER_LIPS = ((82, 87), (13, 14), (312, 317))
"""(upper, lower) inner-lip pairs: left of centre, centre, right of centre."""

UNITS: dict[str, float] = {**MOTION_UNITS, "AU9": 0.020}
"""Quantity change per FACS intensity step: the published motion per step (``complexface.facs_motion``, IOD),
with AU9 as a ratio to the nose length (0.020)."""


def _y(front: np.ndarray, ids) -> np.ndarray:
    """Mean y (down) of the landmarks ``ids`` (any nesting), per face."""
    return front[:, np.ravel(ids), 1].mean(axis=1)


def _height(front: np.ndarray, ids) -> np.ndarray:
    """Mean height of ``ids`` above the eye-corner line."""
    return _y(front, EYE_CORNERS) - _y(front, ids)


def quantities(faces: PointsLike) -> dict[str, np.ndarray]:
    """The raw geometric quantities behind the estimates, per face (module docstring)."""
    points, _ = as_points(faces)
    front = frontalize(points)
    tip = _y(front, NOSE_TIP)
    corners = front[:, list(LIP_CORNERS)]
    return {
        "brow_inner": _height(front, INNER_BROW),
        "brow_half_gap": (front[:, INNER_BROW[1], 0].mean(axis=1) - front[:, INNER_BROW[0], 0].mean(axis=1)) / 2,
        "brow_outer": _height(front, OUTER_BROW),
        "upper_lid": _y(front, IRIS) - _y(front, UPPER_LID),
        "cheek": (_height(front, LOWER_LID) + _height(front, CHEEK)) / 2,
        "nose_wing": (tip - _y(front, ALAR)) / (tip - _y(front, EYE_CORNERS)),
        "corner_lift": _y(front, UPPER_LIP_TOP) - corners[:, :, 1].mean(axis=1),
        "mouth_half_width": (corners[:, 1, 0] - corners[:, 0, 0]) / 2,
        "chin_raise": _y(front, CHIN) - _y(front, LOWER_LIP_BOTTOM),
        "lip_gap": np.mean([front[:, lo, 1] - front[:, up, 1] for up, lo in INNER_LIPS], axis=0),
        "jaw": _y(front, CHIN) - _y(front, SUBNASALE),
    }


@lru_cache(maxsize=1)
def _neutral() -> dict[str, np.ndarray]:
    return quantities(load_template().points.astype(np.float64))


def _displacements(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Template-relative quantities -> per-AU displacements (before scaling), in EDITABLE order."""
    smile = np.maximum(d["corner_lift"], 0.0)
    return {
        "AU1": d["brow_inner"] - d["brow_half_gap"], "AU2": d["brow_outer"], "AU4": -d["brow_half_gap"],
        "AU5": d["upper_lid"], "AU6": d["cheek"], "AU9": d["nose_wing"],
        "AU12": smile, "AU15": np.maximum(-d["corner_lift"], 0.0), "AU17": d["chin_raise"],
        "AU20": d["mouth_half_width"] - smile, "AU25": d["lip_gap"], "AU26": d["jaw"],
    }


def _estimate_arrays(points: np.ndarray) -> dict[str, np.ndarray]:
    neutral = _neutral()
    relative = {k: v - neutral[k] for k, v in quantities(points).items()}
    return {au: value / UNITS[au] for au, value in _displacements(relative).items()}


def estimate(faces: PointsLike) -> dict[str, float] | dict[str, np.ndarray]:
    """Absolute AU estimates (approximate FACS units, 0 = the neutral template) for one or many faces.

    One face (Landmarks or (478, 3)) -> ``{AU: float}``; many ((N, 478, 3) or a list) -> ``{AU: (N,) array}``.
    """
    points, single = as_points(faces)
    return squeeze(_estimate_arrays(points), single)

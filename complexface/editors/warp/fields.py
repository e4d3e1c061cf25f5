"""The AU designs: each of the 12 AUs as a displacement field over the face at intensity 3 (FACS actions
anchored to the landmarks the AU owns); they scale linearly."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from complexface.au import EDITABLE
from complexface.editors.warp.geometry import (
    BROW,
    BROW_LOWER,
    CHEEK,
    CHIN_BOSS,
    LIP_CORNER,
    LOWER_LID,
    LOWER_LIP_MID,
    MENTON,
    NASION,
    NOSE_TIP,
    NOSE_WING,
    SIDES,
    UPPER_LID,
    UPPER_LIP_MID,
    Geometry,
    sorted_uv,
)
from complexface.faces.landmarks import FACE_OVAL, LOWER_INNER_LIP

DESIGN_INTENSITY = 3.0
"""The AU fields below give the motion at this intensity (face units); they scale linearly."""


def _gap(g: Geometry, points: np.ndarray, other: Sequence[int]) -> np.ndarray:
    """|v| distance from each point to the curve through ``other`` landmarks, at the same u."""
    return np.abs(np.interp(points[:, 0], *sorted_uv(g.uv[list(other)])) - points[:, 1])


def _brow_band(g: Geometry, side: int, upper: Sequence[int], lower: Sequence[int],
               vecs: Sequence[tuple[float, float]], reach_in: float, up: float = 0.5) -> np.ndarray:
    """Brow motion: rigid across the brow, fading up the forehead (short of the face oval) and
    down to the upper lid. Downward motion is limited to a share of the brow-lid gap."""
    brow = (g.uv[list(upper)] + g.uv[list(lower)]) / 2
    lid = UPPER_LID[SIDES.index(side)]
    core = 0.03
    down = np.maximum(0.06, _gap(g, brow, lid) - core - 0.025)
    top = g.uv[[i for i in FACE_OVAL if g.uv[i, 1] < g.uv[list(lid), 1].min()]]
    room = brow[:, 1] - np.interp(brow[:, 0], *sorted_uv(top))
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
    """Brow lowerer: brows down and together; upper lids narrow slightly.

    The corrugator and the depressors pull the inner brow down and toward the midline while the lateral tail
    barely moves, so the brow takes the oblique line of a scowl, lowest at the nose (design shape; the same
    calibrated inner-brow motion as before, see ``facs_motion``)."""
    field = g.zeros()
    for (side, upper), lower, lid in zip(g.sides(BROW), BROW_LOWER, UPPER_LID):
        vecs = [(0, 0.0), (-0.005, 0.0), (-0.015, 0.035), (-0.035, 0.075), (-0.045, 0.095)]
        field += _brow_band(g, side, upper, lower, vecs, reach_in=0.25, up=0.4)
        pts = g.uv[list(lid)]
        drop = 0.022 * np.sin(np.linspace(0, np.pi, len(lid))) ** 0.7
        field += g.band(pts, [(0, d) for d in drop], side, up=np.maximum(_gap(g, pts, lower), 0.05),
                        down=np.maximum(0.6 * _gap(g, pts, LOWER_LID[SIDES.index(side)]), 0.03),
                        reach_in=0.05, reach_out=0.1)
    # the nose root (nasion) stays: the brows' motion fades out over the bridge between them
    return field * (1 - 0.7 * g.bump(g.at(NASION), (0, 1), inward=0.1, outward=0.1, up=0.08, down=0.12)[1])


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
    """Chin raiser: chin boss and lower lip pushed up; the mouth line bows up. The chin bottom (menton) stays:
    the boss bunches above it."""
    to_menton = max(0.08, float(g.at(MENTON)[1] - g.at(CHIN_BOSS)[1]))
    field = g.bump(g.at(CHIN_BOSS), (0, -0.065), inward=0.45, outward=0.45, up=0.3, down=to_menton, plateau=0.2)
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
    """Jaw drop: lower lip, chin and jaw go down, the mouth opens, the face lengthens.

    The jaw moves rigidly from the lower lip down to the chin bottom (menton) and the motion fades over
    the neck below it."""
    mid, seam, boss = g.at(LIP_CORNER)[0], g.at(LOWER_INNER_LIP)[1], g.at(CHIN_BOSS)[1]
    menton = g.at(MENTON)[1]
    below = min(0.75, float(g.V.max()) - menton - 0.05)
    jaw = g.box((mid - 0.3, mid + 0.3), (seam, menton), (0, 0.17),
                fall_u=0.75, fall_up=seam - g.at(2)[1], fall_down=below)
    return jaw * g.jaw_share(boss)


def smile_opening(g: Geometry) -> np.ndarray:
    """AU12 with the lips apart (AU25): the zygomatic pull lifts the lateral upper lip with the corners, so the
    opening takes a smile's crescent and shows the upper teeth (spontaneous smiles raise the upper lip by 28%
    of its resting height: Tarantili, Halazonetis & Spyropoulos 2005); its middle rises less. The middle of the lower
    lip drops a little more than its sides (design values), so the lower edge of the opening curves like a smile's
    and the upper teeth show between the lips instead of through a flat slit."""
    field = g.zeros()
    for side, lateral in g.sides(((81, 80), (311, 310))):
        field += g.bump(g.at(lateral), (0.01, -0.05), side, inward=0.3, outward=0.28, up=0.22, down=0.15)
    field += g.bump(g.at(UPPER_LIP_MID), (0, -0.025), inward=0.25, outward=0.25, up=0.25, down=0.2)
    lower = g.bump(g.at(LOWER_LIP_MID), (0, 0.04), inward=0.22, outward=0.22, up=0.3, down=0.4)
    return field * g.upper_gate() + lower * g.lower_gate()


def oblique_brows(g: Geometry) -> np.ndarray:
    """AU1 with AU4: the medial frontalis lifts the inner brows while the corrugator draws them together and the
    lateral brow, which AU1 alone lifts a little, stays down, so the brows take the oblique line of sadness, inner
    corners up (Ekman & Friesen 1975, Unmasking the Face). The lateral brow is lowered (design values); the
    inner brows keep the motion of AU1 and AU4."""
    field = g.zeros()
    for (side, upper), lower in zip(g.sides(BROW), BROW_LOWER):
        vecs = [(0, 0.055), (0, 0.06), (0, 0.04), (0, 0.01), (0, 0.0)]
        field += _brow_band(g, side, upper, lower, vecs, reach_in=0.1, up=0.4)
    return field


AU_FIELDS: dict[str, Callable[[Geometry], np.ndarray]] = {
    "AU1": au1, "AU2": au2, "AU4": au4, "AU5": au5, "AU6": au6, "AU9": au9,
    "AU12": au12, "AU15": au15, "AU17": au17, "AU20": au20, "AU25": au25, "AU26": au26,
}
assert tuple(AU_FIELDS) == EDITABLE

AU_PAIRS: dict[str, tuple[tuple[str, str], Callable[[Geometry], np.ndarray]]] = {
    "AU12+AU25": (("AU12", "AU25"), smile_opening),
    "AU1+AU4": (("AU1", "AU4"), oblique_brows),
}
"""Motions two AUs make together and neither alone, at ``DESIGN_INTENSITY`` of the weaker (positive) one."""

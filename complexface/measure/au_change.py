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
2. Each AU is read along the *axis* its muscle moves its landmarks, per side of the face (left/right
   from the person's point of view), divided by its unit, the motion of one FACS intensity step from
   published facial-motion measurements (``complexface.facs_motion``: axes, units, sources), so the
   numbers approximate FACS steps (a moderate, C-level action ~3). Antagonists sharing an axis are
   attributed to the requested member (``AU12=-3`` reads AU12 -3), otherwise by direction.

Leakage is the motion of AUs that are physically independent of the request: ``COUPLED`` lists,
for each AU, the AUs that act on the same landmarks or are anatomically entailed by it (FACS
manual appearance changes), and ``leakage_aus`` excludes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from complexface.au import EDITABLE, SIDES, parse_edit
from complexface.faces.landmarks import IRIS_CENTERS
from complexface.facs_motion import SIDED, readings, requested_sides
from complexface.measure.geometry import PointsLike, as_points, rigid_fit, squeeze, weighted_similarity

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
    sides = requested_sides(parse_edit(request).values)
    independent = [au for au in EDITABLE if au not in sides and not any(au in COUPLED[a] for a in sides)]
    return independent + [au + side for au, on in sides.items() if on != set(SIDES) for side in SIDES
                          if side not in on]


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
    """Skull-relative landmark motion of ``edited`` against ``source`` (pairs broadcast like numpy).

    The image-plane motion is taken as motion along the face's own surface plane (its frontal x-y
    plane): on a turned head a sideways pull shows foreshortened in the photo and is read at its full
    length (landmark depth is not observed in an edit, so it is not used)."""
    src, _ = as_points(source)
    dst, _ = as_points(edited)
    src, dst = np.broadcast_arrays(src, dst)
    aligned = _align(dst, src)
    rotation = rigid_fit(src)[0]  # photo -> frontal frame; lengths in the source's own IOD
    to_photo = np.transpose(rotation, (0, 2, 1))[:, :2, :2]  # frontal x-y motion -> its image x-y motion
    iod = np.linalg.norm(src[:, IRIS_CENTERS[1]] - src[:, IRIS_CENTERS[0]], axis=-1)
    planar = np.einsum("nij,nkj->nki", np.linalg.inv(to_photo), (aligned - src)[..., :2])
    return Motion(np.concatenate([planar, np.zeros_like(planar[..., :1])], axis=-1) / iod[:, None, None])


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
    values = readings(motion(source, edited).delta, _asked(request))
    keep = [*EDITABLE, *SIDED] if sides else list(EDITABLE)
    return squeeze({k: values[k] for k in keep}, single_src and single_dst)


def changes(source: PointsLike, edited: PointsLike, requests: Sequence[object],
            sides: bool = False) -> list[dict[str, float]]:
    """``change`` of one source against many edits, each with its own request (one alignment pass)."""
    moved = motion(source, edited)
    keep = [*EDITABLE, *SIDED] if sides else list(EDITABLE)
    out = []
    for i, request in enumerate(requests):
        values = readings(moved[i].delta, _asked(request))
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

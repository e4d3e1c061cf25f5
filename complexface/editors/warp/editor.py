"""The warp editor: per-face precompute of the AU bases, the capped one-to-one warp of an edit, rendering."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from complexface.au import BILATERAL, SIDES, AUEdit
from complexface.editors.base import Editor
from complexface.editors.displacement import cap, warp_window
from complexface.editors.warp.appearance import Appearance
from complexface.editors.warp.eyes import Eyes
from complexface.editors.warp.fields import AU_FIELDS, AU_PAIRS, DESIGN_INTENSITY
from complexface.editors.warp.geometry import Geometry
from complexface.editors.warp.glasses import Glasses
from complexface.editors.warp.mouth import MouthModel
from complexface.faces.align import JAW_DROP_ROOM, AlignedFace
from complexface.faces.image_io import content_key
from complexface.faces.landmarks import IRIS, IRIS_CENTERS
from complexface.facs_motion import readings
from complexface.settings import require

CALIBRATION_INTENSITY = 3.0
"""Intensity at which each AU's field is scaled to the published motion (a moderate, C-level action)."""
GAIN_RANGE = (0.4, 3.0)
"""Smallest and largest scaling of an AU's designed field by the per-face calibration."""


@dataclass
class FaceWork:
    """Per-face precompute: one coarse displacement basis per AU (and per pair of ``AU_PAIRS``), the grid window
    each (and its shading) touches, the cap's floor, the mouth model, the shading maps, the eyes and glasses."""

    bases: dict[str, np.ndarray]
    supports: dict[str, tuple[int, int, int, int]]
    floor: np.ndarray
    """Smallest area ratio each grid cell may keep (``min_jacobian``; less on the neck, which the chin covers)."""
    mouth: MouthModel
    appearance: Appearance
    eyes: Eyes | None
    """The rigid eyeballs (``rigid_eyes``)."""
    glasses: Glasses | None
    """The glasses frame found on the face (``glasses``), kept rigid."""


@dataclass
class Motion:
    """An edit's capped forward displacement on a window of the coarse grid (rows r0:r1, cols c0:c1)."""

    disp: np.ndarray
    window: tuple[int, int, int, int]


class WarpEditor(Editor):
    """Geometric FACS AU editor: smooth one-to-one warps designed from the FACS actions.

    ``grid_step``: coarse grid spacing in crop pixels; ``min_jacobian``: smallest allowed local area ratio of
    the warp (compression cap); ``appearance``: the AUs' skin shading (creases, bulges; ``appearance.py``);
    ``mouth_interior``: cavity and teeth where the lips part (``mouth.py``); ``calibrate``: scale each AU's
    field per face so its landmarks move by the published motion per FACS step (``complexface.facs_motion``;
    off: the designs as drawn); ``rigid_eyes``: keep the eyeballs rigid under moving lids (``eyes.py``);
    ``glasses``: find glasses frames and keep them out of the warp (``glasses.py``); ``cache_faces``: how many
    faces' precomputes to keep; ``lock``: regions kept in their source shape (``Editor``).
    """

    name = "warp"

    def __init__(self, grid_step: int = 4, min_jacobian: float = 0.3, appearance: bool = True,
                 mouth_interior: bool = True, calibrate: bool = True, cache_faces: int = 4,
                 lock: Sequence[str] = (), rigid_eyes: bool = True, glasses: bool = True) -> None:
        require(grid_step >= 1 and 0 < min_jacobian < 1,
                f"warp editor: grid_step must be >= 1 and min_jacobian in (0, 1), got {grid_step} and {min_jacobian}")
        super().__init__(lock)
        self.grid_step = grid_step
        self.min_jacobian = min_jacobian
        self.appearance = appearance
        self.mouth_interior = mouth_interior
        self.calibrate = calibrate
        self.cache_faces = cache_faces
        self.rigid_eyes = rigid_eyes
        self.glasses = glasses
        self._cache: OrderedDict[bytes, FaceWork] = OrderedDict()

    # -- public API

    def render(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[np.ndarray]:
        work = self.prepare(face)
        return [self._render(face, work, edit) for edit in edits]

    def prepare(self, face: AlignedFace) -> FaceWork:
        """The face's precompute, cached by its landmarks and a sparse sample of its pixels."""
        key = content_key(face.landmarks.points, face.image[::31, ::31])
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
        weights = _weights(edit.values)
        active = [k for k in weights if k in work.bases]
        if not active:
            return None
        r0, r1, c0, c1 = _union([work.supports[k] for k in active])
        disp = sum(weights[k] * work.bases[k][r0:r1, c0:c1] for k in active)
        floor = work.floor[r0:r1 - 1, c0:c1 - 1]
        return Motion(cap(disp.astype(np.float32), self.grid_step, floor), (r0, r1, c0, c1))

    def landmark_motion(self, face: AlignedFace, edit: AUEdit) -> np.ndarray:
        """(478, 2) displacement in crop pixels that the final (capped) warp gives each landmark.

        An inner-lip landmark sits on the seam band that lip-parting warps stretch open (and paint
        as the mouth cavity), so when the band opens it reports the motion of its own lip, sampled
        just outside the band. The irises stay still when the eyeballs are kept rigid (``rigid_eyes``).
        """
        work = self.prepare(face)
        return self._landmark_motion(work, face.landmarks.xy, self.motion(work, edit))

    def _landmark_motion(self, work: FaceWork, xy: np.ndarray, motion: Motion | None) -> np.ndarray:
        if motion is None:
            return np.zeros_like(xy)
        at_landmark = self._sample_motion(motion, xy)
        outward = work.mouth.lip_offsets
        parting = np.einsum("ij,ij->i", self._sample_motion(motion, xy + outward) - at_landmark, outward)
        scale = np.maximum(parting, 0.0) / np.maximum(np.einsum("ij,ij->i", outward, outward), 1e-9)
        moved = at_landmark + scale[:, None] * outward
        if work.eyes is not None:
            moved[list(IRIS)] = 0.0
        return moved

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
        appearance = Appearance.of(face.image, geometry)
        gates = {False: geometry.face_gate(), True: geometry.face_gate(drop=JAW_DROP_ROOM)}
        bases, supports = {}, {}
        for key, design in AU_FIELDS.items():
            field = design(geometry) * gates[key == "AU26"] / DESIGN_INTENSITY
            bases[key] = geometry.frame.to_pixels(field).astype(np.float32)
            windows = [_support(bases[key], margin=2)]
            if key in appearance.maps:
                windows.append(_cells(appearance.maps[key][0], self.grid_step))
            supports[key] = _union(windows)
        work = FaceWork(bases, supports, geometry.floor(self.min_jacobian),
                        MouthModel.of(face, geometry, self.grid_step), appearance,
                        Eyes.of(face, geometry.frame.unit) if self.rigid_eyes else None,
                        Glasses.detect(face) if self.glasses else None)
        if self.calibrate:
            self._calibrate(work, geometry)
        for key, (_, design) in AU_PAIRS.items():
            field = design(geometry) * gates[False] / DESIGN_INTENSITY
            bases[key] = geometry.frame.to_pixels(field).astype(np.float32)
            supports[key] = _support(bases[key], margin=2)
        left = geometry.left_share()[..., None]
        for key in (*BILATERAL, *AU_PAIRS):  # one-sided AUs (AU12L, AU12R): the field on one side of the midline
            bases[key + "L"] = (bases[key] * left).astype(np.float32)
            bases[key + "R"] = (bases[key] * (1 - left)).astype(np.float32)
            supports[key + "L"] = supports[key + "R"] = supports[key]
        return work

    def _calibrate(self, work: FaceWork, geometry: Geometry, rounds: int = 3) -> None:
        """Scale each AU's basis (in place) so that at intensity ``CALIBRATION_INTENSITY`` the capped warp moves
        the AU's landmarks by that many FACS steps of published motion (``facs_motion``: axes and units) on
        this face; the gain stays within ``GAIN_RANGE`` of the design."""
        frame, xy = geometry.frame, geometry.frame.to_xy(geometry.uv)
        iris = geometry.landmarks.points[list(IRIS_CENTERS)]
        depth = float(np.linalg.norm(iris[1] - iris[0])) / frame.unit  # a turned head foreshortens the IOD
        for key in AU_FIELDS:
            gain = 1.0
            for _ in range(rounds):
                edit = AUEdit({key: CALIBRATION_INTENSITY})
                px = self._landmark_motion(work, xy, self.motion(work, edit))
                delta = np.stack([px @ frame.ex, px @ frame.ey / depth], axis=-1)[None] / frame.unit
                reached = float(readings(delta, edit.values)[key][0]) / CALIBRATION_INTENSITY
                step = float(np.clip(1.0 / reached, *GAIN_RANGE)) if reached > 1e-3 else 1.0
                step = float(np.clip(gain * step, *GAIN_RANGE)) / gain
                work.bases[key] *= step
                gain *= step

    def _render(self, face: AlignedFace, work: FaceWork, edit: AUEdit) -> np.ndarray:
        motion = self.motion(work, edit)
        if motion is None:
            return face.image.copy()
        r0, _, c0, _ = motion.window
        base = face.image if work.glasses is None else work.glasses.clean  # the skin under a frame moves
        source = work.appearance.apply(base, edit) if self.appearance else base
        out, back = warp_window(face.image, motion.disp, (r0, c0), self.grid_step, source)
        if self.mouth_interior:
            work.mouth.paint(out, back, motion.window, self.grid_step)
        if work.eyes is not None:
            lids = face.landmarks.xy[work.eyes.ids]
            work.eyes.paint(out, lids + self._sample_motion(motion, lids))
        if work.glasses is not None:
            r0, r1, c0, c1 = (self.grid_step * k for k in motion.window)
            work.glasses.paint(out, face.image, (r0, r1, c0, c1))
        return out


def _weights(values: Mapping[str, float]) -> dict[str, float]:
    """An edit's weight on each basis: its AUs, and each pair of ``AU_PAIRS`` at the weaker of its two positive
    intensities (per side when the first AU is given for one side: ``AU12L`` with ``AU25``)."""
    weights = dict(values)
    for key, (a, b) in ((k, pair) for k, (pair, _) in AU_PAIRS.items()):
        for side in ("", *SIDES):
            w = min(values.get(a + side, 0.0), values.get(b, 0.0))
            if w > 0:
                weights[key + side] = w
    return weights


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

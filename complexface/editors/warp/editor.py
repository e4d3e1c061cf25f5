"""The warp editor: per-face precompute of the AU bases, the capped one-to-one warp of an edit, rendering."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from complexface.au import BILATERAL, AUEdit
from complexface.editors.base import Editor
from complexface.editors.displacement import cap, warp_window
from complexface.editors.warp.fields import AU_FIELDS, DESIGN_INTENSITY
from complexface.editors.warp.geometry import Geometry
from complexface.editors.warp.mouth import MouthModel
from complexface.editors.warp.wrinkles import Wrinkles
from complexface.faces.align import JAW_DROP_ROOM, AlignedFace
from complexface.faces.image_io import content_key
from complexface.settings import require


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

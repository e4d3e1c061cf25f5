"""The editor interface: one face, many AU edits per call, and an optional geometry lock for any editor."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from complexface.au import AUEdit, AUError
from complexface.editors.lock import GeometryLock
from complexface.faces.align import AlignedFace
from complexface.faces.tracking import LandmarkTracker


@dataclass
class Edited:
    """One edited crop and what the editor has to say about it (for the run's manifest)."""

    image: np.ndarray
    details: dict = field(default_factory=dict)


class Editor(ABC):
    """Edits aligned face crops. Subclasses implement ``render`` (batching and reusing per-face work);
    ``edit``/``run`` add the geometry lock.

    ``lock``: face regions (``editors.lock.REGIONS``: nose, face_outline, eyes, brows, lips) warped back to
    their source shape after every edit, leaving the expression alone; the edit's landmarks come from the
    editor's own landmark motion when it knows it, else from tracking the source's landmarks into the edit.
    """

    name: str = "editor"
    needs_bg: bool = False
    """Whether ``edit`` needs the MagicFace ``bg`` condition image."""
    sides: bool = True
    """Whether the editor can edit one side of a bilateral AU (``AU12L=3``)."""

    def __init__(self, lock: Sequence[str] = ()) -> None:
        self.set_lock(lock)

    def set_lock(self, lock: Sequence[str]) -> None:
        """Lock these regions after every edit (an empty list: no lock)."""
        self.lock = GeometryLock(list(lock)) if lock else None
        self._tracker: LandmarkTracker | None = None

    @abstractmethod
    def render(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[np.ndarray]:
        """One edited crop (same shape and dtype as ``face.image``) per edit, in order, before any lock."""

    def landmark_motion(self, face: AlignedFace, edit: AUEdit) -> np.ndarray | None:
        """The (478, 2) crop-pixel displacement ``edit`` gives each landmark, when the editor knows it
        exactly (a geometric editor; None otherwise)."""
        return None

    def check(self, edits: Sequence[AUEdit]) -> None:
        """AUError if the editor cannot make these edits (one-sided AUs for an editor without sides)."""
        sided = [e.label for e in edits if e.sided]
        if sided and not self.sides:
            raise AUError(f"the {self.name} editor has no per-side AUs, so it cannot make {', '.join(sided[:3])}"
                          f"{' ...' if len(sided) > 3 else ''}; give both sides (AU12=3) or use editor=warp")

    def run(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[Edited]:
        """The locked edits, each with the editor's details (empty for most editors)."""
        self.check(edits)
        images = self.render(face, edits, bg)
        if self.lock is None:
            return [Edited(image) for image in images]
        return [Edited(self._locked(face, edit, image)) for edit, image in zip(edits, images, strict=True)]

    def edit(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[np.ndarray]:
        """One edited crop per edit (``run`` without the details)."""
        return [edited.image for edited in self.run(face, edits, bg)]

    def _locked(self, face: AlignedFace, edit: AUEdit, image: np.ndarray) -> np.ndarray:
        motion = self.landmark_motion(face, edit)
        if motion is not None:
            return self.lock.apply(face, image, face.landmarks.xy + motion)
        self._tracker = self._tracker or LandmarkTracker()
        tracked = self._tracker.track(face.image, image, face.landmarks)
        return self.lock.apply(face, image, tracked.landmarks.xy, tracked.trusted)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tracker": None}

"""From a photo file to aligned faces ready for an editor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from complexface.faces.align import CROP_SIZE, AlignedFace, align
from complexface.faces.image_io import load_image
from complexface.faces.landmarks import LandmarkDetector, Landmarks, NoFaceError
from complexface.settings import require

MIN_FACE_WIDTH = 48


@dataclass(frozen=True)
class Face:
    """One face found in a photo, with its aligned crop."""

    photo: np.ndarray
    landmarks: Landmarks
    aligned: AlignedFace
    index: int
    """0 = the largest face in the photo."""
    n_faces: int


class FacePipeline:
    """Load a photo, find faces, align each: ``select`` is ``"largest"`` or ``"all"``."""

    def __init__(self, select: str = "largest", crop_size: int = CROP_SIZE, min_confidence: float = 0.5) -> None:
        require(select in ("largest", "all"), f"face select must be 'largest' or 'all', got {select!r}")
        self.select = select
        self.crop_size = crop_size
        self.detector = LandmarkDetector(min_confidence=min_confidence)

    def faces_in(self, photo: np.ndarray, name: str = "photo") -> list[Face]:
        """Aligned faces of an RGB photo; raises NoFaceError with a readable reason."""
        found = self.detector.detect(photo)
        if not found:
            raise NoFaceError(f"no face found in {name}; use a photo with a clearly visible, roughly frontal face")
        usable = [f for f in found if f.width >= MIN_FACE_WIDTH]
        if not usable:
            raise NoFaceError(
                f"the face in {name} is only {found[0].width:.0f} px wide; use a photo where the face is at "
                f"least {MIN_FACE_WIDTH} px wide (ideally 200+)"
            )
        chosen = usable if self.select == "all" else usable[:1]
        return [Face(photo, lm, align(photo, lm, self.crop_size), i, len(found)) for i, lm in enumerate(chosen)]

    def __call__(self, path: str | Path) -> list[Face]:
        path = Path(path)
        return self.faces_in(load_image(path), path.name)

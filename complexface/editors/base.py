"""The editor interface: one face, many AU edits per call."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from complexface.au import AUEdit
from complexface.faces.align import AlignedFace


class Editor(ABC):
    """Edits aligned face crops. Subclasses batch and reuse per-face work inside ``edit``."""

    name: str = "editor"
    needs_bg: bool = False
    """Whether ``edit`` needs the MagicFace ``bg`` condition image."""

    @abstractmethod
    def edit(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[np.ndarray]:
        """Return one edited crop (same shape and dtype as ``face.image``) per edit, in order."""

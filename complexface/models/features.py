"""Image-tower input for ``model=expression_clip``: landmark AU features and the dlib face embedding.

Per image: the 12 landmark AU estimates (``complexface.measure.estimate``), optionally the
frontalized face mesh relative to the neutral template (``mesh``), and the 128-d dlib identity
embedding. Computed once per image and cached by the image's content hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from complexface.atomic import atomic_write
from complexface.au import EDITABLE
from complexface.faces import LandmarkDetector, load_image
from complexface.measure import DlibIdentity, estimate, frontalize, load_template

DLIB_DIM = 128
N_MESH = 478


class FaceFeatures:
    """Feature vectors of face crops; a crop with no detectable face gets zeros (and ``found`` False)."""

    version = "v1"

    def __init__(self, mesh: bool = False, identity: bool = True) -> None:
        self.mesh = mesh
        self.identity = identity
        self._detector: LandmarkDetector | None = None
        self._dlib: DlibIdentity | None = None

    @property
    def dim(self) -> int:
        return len(EDITABLE) + (N_MESH * 2 if self.mesh else 0) + (DLIB_DIM if self.identity else 0)

    @property
    def name(self) -> str:
        return f"features-{self.version}-au{'-mesh' if self.mesh else ''}{'-dlib' if self.identity else ''}"

    def _models(self) -> tuple[LandmarkDetector, DlibIdentity]:
        if self._detector is None:
            self._detector, self._dlib = LandmarkDetector(), DlibIdentity()
        return self._detector, self._dlib

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The feature vector of one RGB face crop (float32, ``dim`` long)."""
        detector, dlib = self._models()
        found = detector.detect(image)
        if not found:
            return np.zeros(self.dim, np.float32)
        landmarks = found[0]
        parts = [np.array(list(estimate(landmarks).values()), np.float64)]
        if self.mesh:
            parts.append((frontalize(landmarks)[0, :, :2] - load_template().points[:, :2]).ravel() * 10)
        if self.identity:
            parts.append(dlib.embed(image, landmarks))
        return np.concatenate(parts).astype(np.float32)

    def of_files(self, paths: Sequence[str | Path], cache: str | Path | None = None) -> np.ndarray:
        """(N, dim) features of image files, read from and added to the ``.npz`` cache file."""
        keys = [hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in paths]
        known: dict[str, np.ndarray] = {}
        if cache is not None and Path(cache).exists():
            with np.load(cache) as data:
                known = dict(zip(data["keys"].tolist(), data["values"], strict=True))
        missing = [(k, p) for k, p in zip(keys, paths, strict=True) if k not in known]
        for key, path in missing:
            known[key] = self(load_image(path))
        if cache is not None and missing:
            with atomic_write(Path(cache)) as out:
                np.savez(out, keys=np.array(list(known)), values=np.stack(list(known.values())))
        return np.stack([known[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)

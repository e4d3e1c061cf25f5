"""Face-identity embeddings for "is the edited face still the same person?".

``DlibIdentity``: dlib's 128-d ResNet (``dlib_face_recognition_resnet_model_v1.dat``) on a face
chip aligned by dlib's 5-point shape predictor, run inside a face box derived from our
MediaPipe landmarks (the box dlib's own HOG detector would give: side 2.31 IOD, centred
0.48 IOD below the eye midpoint, fitted on the bundled portraits). Euclidean distance below
``SAME_PERSON_THRESHOLD`` = 0.6 means "same person" (dlib's threshold, 99.38% on LFW).

``ArcFaceIdentity``: any local ArcFace-style ONNX model (112x112 RGB input normalised to
[-1, 1], one embedding output), on the standard 5-point ArcFace alignment; cosine distance.
Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from complexface.faces.landmarks import IRIS_CENTERS, Landmarks

SAME_PERSON_THRESHOLD = 0.6
"""dlib: Euclidean distance below this = same person."""
DLIB_FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")
BOX_SIDE_IOD, BOX_DROP_IOD = 2.31, 0.48
"""dlib HOG-detector box in 3D inter-ocular distances (mean over the bundled portraits; sd 0.16, 0.11)."""
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
"""Where ArcFace expects the eyes, nose tip and mouth corners in its 112x112 input (image-left first)."""
ARCFACE_POINTS = (468, 473, 1, 61, 291)


class IdentityModelError(FileNotFoundError):
    """A face-identity model file is missing; the message names it and where it was looked for."""


def default_dlib_dir() -> Path | None:
    """The ``models/`` folder of the installed ``face_recognition_models`` package, if any (not imported)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def distance(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Euclidean distance between embeddings along the last axis (float for single vectors)."""
    d = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)
    return float(d) if np.ndim(d) == 0 else d


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """1 - cosine similarity along the last axis (for ArcFace embeddings)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    d = 1.0 - cos
    return float(d) if np.ndim(d) == 0 else d


def face_box(landmarks: Landmarks) -> tuple[int, int, int, int]:
    """Square (left, top, right, bottom) box like dlib's frontal detector's, from the irises.

    Uses the 3D inter-ocular distance (yaw does not shrink it) and the face's own down direction.
    """
    left, right = landmarks.points[list(IRIS_CENTERS)]
    iod = float(np.linalg.norm(right - left))
    across = (right - left)[:2] / max(float(np.linalg.norm((right - left)[:2])), 1e-9)
    down = np.array([-across[1], across[0]])
    cx, cy = (left[:2] + right[:2]) / 2 + BOX_DROP_IOD * iod * down
    half = BOX_SIDE_IOD * iod / 2
    return round(cx - half), round(cy - half), round(cx + half), round(cy + half)


class DlibIdentity:
    """dlib ResNet face embeddings (128-d); the models load on first use.

    ``model_dir`` holds the two ``DLIB_FILES``; default: the ``face_recognition_models`` package.
    ``jitters`` > 0 averages that many jittered chips (slower, slightly more stable).
    """

    threshold = SAME_PERSON_THRESHOLD

    def __init__(self, model_dir: str | Path | None = None, jitters: int = 0) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else default_dlib_dir()
        self.jitters = jitters
        self._models: tuple | None = None

    def _load(self) -> tuple:
        if self._models is None:
            paths = [self.model_dir / name for name in DLIB_FILES] if self.model_dir else []
            missing = [p for p in paths if not p.is_file()]
            if not paths or missing:
                where = str(self.model_dir) if self.model_dir else "(face_recognition_models is not installed)"
                raise IdentityModelError(
                    f"dlib identity model files missing: expected {' and '.join(DLIB_FILES)} in {where}; "
                    "install them with `pip install face-recognition-models` "
                    "or pass model_dir=<folder with the .dat files>"
                )
            import dlib

            self._models = (dlib.shape_predictor(str(paths[0])), dlib.face_recognition_model_v1(str(paths[1])))
        return self._models

    def embed(self, image: np.ndarray, landmarks: Landmarks) -> np.ndarray:
        """128-d embedding of the face at ``landmarks`` in an RGB uint8 ``image``."""
        import dlib

        predictor, model = self._load()
        rect = dlib.rectangle(*face_box(landmarks))
        rgb = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        shape = predictor(rgb, rect)
        return np.asarray(model.compute_face_descriptor(rgb, shape, self.jitters), np.float64)

    def same_person(self, a: np.ndarray, b: np.ndarray) -> bool:
        return distance(a, b) < self.threshold


class ArcFaceIdentity:
    """Embeddings from a local ArcFace-style ONNX model (e.g. insightface's ``w600k_r50.onnx``)."""

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise IdentityModelError(
                f"ArcFace ONNX model not found: {self.model_path}; pass the path of a local .onnx file "
                "(112x112 RGB input, one embedding output); nothing is downloaded"
            )
        self._session = None

    def _load(self):
        if self._session is None:
            import onnxruntime

            self._session = onnxruntime.InferenceSession(str(self.model_path), providers=["CPUExecutionProvider"])
        return self._session

    @staticmethod
    def aligned_chip(image: np.ndarray, landmarks: Landmarks) -> np.ndarray:
        """112x112 RGB chip with the eyes, nose tip and mouth corners on ARCFACE_TEMPLATE."""
        points = landmarks.points[list(ARCFACE_POINTS), :2].astype(np.float32)
        matrix, _ = cv2.estimateAffinePartial2D(points, ARCFACE_TEMPLATE, method=cv2.LMEDS)
        return cv2.warpAffine(np.ascontiguousarray(image[..., :3]), matrix, (112, 112), borderValue=0)

    def embed(self, image: np.ndarray, landmarks: Landmarks) -> np.ndarray:
        """L2-normalised embedding of the face at ``landmarks`` in an RGB uint8 ``image``."""
        session = self._load()
        chip = self.aligned_chip(image, landmarks).astype(np.float32)
        blob = ((chip - 127.5) / 127.5).transpose(2, 0, 1)[None]
        output = session.run(None, {session.get_inputs()[0].name: blob})[0].reshape(-1).astype(np.float64)
        return output / max(float(np.linalg.norm(output)), 1e-12)

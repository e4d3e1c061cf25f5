"""Face-identity embeddings for "is the edited face still the same person?".

``DlibIdentity``: dlib's 128-d ResNet (``dlib_face_recognition_resnet_model_v1.dat``) on a face
chip aligned by dlib's 5-point shape predictor, run inside a face box derived from our
MediaPipe landmarks (the box dlib's own HOG detector would give: side 2.31 IOD, centred
0.48 IOD below the eye midpoint, fitted on the bundled portraits). Euclidean distance below
``SAME_PERSON_THRESHOLD`` = 0.6 means "same person" (dlib's threshold, 99.38% on LFW).

``ArcFaceIdentity``: the recognition model of a local insightface model pack (or one recognition
``.onnx``), loaded by insightface's model zoo and run on insightface's 5-point ``norm_crop``
alignment of our MediaPipe eye centres, nose tip and mouth corners; cosine distance, no threshold
claimed. Nothing is downloaded.

Both check their model files when constructed (so a bad path fails before a sweep starts) and load
the models on first use; pickled copies (sweep workers) reload them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from complexface.errors import UserError
from complexface.faces.landmarks import IRIS_CENTERS, Landmarks

SAME_PERSON_THRESHOLD = 0.6
"""dlib: Euclidean distance below this = same person."""
DLIB_FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")
BOX_SIDE_IOD, BOX_DROP_IOD = 2.31, 0.48
"""dlib HOG-detector box in 3D inter-ocular distances (mean over the bundled portraits; sd 0.16, 0.11)."""
ARCFACE_POINTS = (468, 473, 1, 61, 291)
"""MediaPipe points in insightface's 5-point order: eye centres (image-left first), nose tip, mouth corners."""
ARCFACE_EXPECTED = ("w600k_r50.onnx (buffalo_l's recognition model; or another recognition .onnx: "
                    "square input of 112 px or more, one embedding output)")
ARCFACE_SOURCE = ("insightface model packs: https://github.com/deepinsight/insightface/tree/master/model_zoo; "
                  "unzip buffalo_l into ~/.insightface/models/buffalo_l and pass that folder "
                  "(or its w600k_r50.onnx) as model_path")
ONNX_PROVIDERS = ["CPUExecutionProvider"]


class IdentityModelError(UserError, FileNotFoundError):
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
    """dlib ResNet face embeddings (128-d); the files are checked at construction, the models load on first use.

    ``model_dir`` holds the two ``DLIB_FILES``; default: the ``face_recognition_models`` package.
    ``jitters`` > 0 averages that many jittered chips (slower, slightly more stable).
    """

    threshold: float | None = SAME_PERSON_THRESHOLD

    def __init__(self, model_dir: str | Path | None = None, jitters: int = 0) -> None:
        self.model_dir = Path(model_dir).expanduser() if model_dir is not None else default_dlib_dir()
        self.jitters = jitters
        paths = [self.model_dir / name for name in DLIB_FILES] if self.model_dir else []
        if not paths or not all(p.is_file() for p in paths):
            where = str(self.model_dir) if self.model_dir else "(face_recognition_models is not installed)"
            raise IdentityModelError(
                f"dlib identity model files missing: expected {' and '.join(DLIB_FILES)} in {where}; "
                "install them with `pip install face-recognition-models` "
                "or pass model_dir=<folder with the .dat files>"
            )
        self.paths = paths
        self._models: tuple | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_models": None}

    def _load(self) -> tuple:
        if self._models is None:
            import dlib

            predictor, recognizer = (str(p) for p in self.paths)
            self._models = (dlib.shape_predictor(predictor), dlib.face_recognition_model_v1(recognizer))
        return self._models

    def embed(self, image: np.ndarray, landmarks: Landmarks) -> np.ndarray:
        """128-d embedding of the face at ``landmarks`` in an RGB uint8 ``image``."""
        import dlib

        predictor, model = self._load()
        rect = dlib.rectangle(*face_box(landmarks))
        rgb = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        shape = predictor(rgb, rect)
        return np.asarray(model.compute_face_descriptor(rgb, shape, self.jitters), np.float64)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Euclidean distance between two embeddings (same person below ``threshold``)."""
        return float(distance(a, b))

    def same_person(self, a: np.ndarray, b: np.ndarray) -> bool:
        return self.distance(a, b) < self.threshold


def _insightface_model(path: Path, task: str | None = None) -> Any:
    """insightface's model for an .onnx file (routed by its input shape) or, with ``task``, a manifest pack folder."""
    from insightface.model_zoo import get_model

    return get_model(str(path), model_task=task, providers=ONNX_PROVIDERS)


class ArcFaceIdentity:
    """ArcFace embeddings from a local insightface recognition model; cosine distance, no threshold claimed.

    ``model_path``: an insightface model pack folder (e.g. ``buffalo_l``; its recognition model is found the way
    insightface's ``FaceAnalysis`` finds it) or one recognition ``.onnx`` (e.g. ``w600k_r50.onnx``). The model is
    found at construction (IdentityModelError listing the expected files otherwise); nothing is downloaded.
    """

    threshold: float | None = None

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = Path(model_path).expanduser()
        self._model, self._source = self._find()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}

    def _find(self) -> tuple[Any, tuple[Path, str | None]]:
        """insightface's recognition model at ``model_path`` and how to load it again; IdentityModelError if none."""
        from insightface.model_zoo import RECOGNITION_TASK, has_model_package_manifest, load_model_package
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidProtobuf

        path = self.model_path
        if path.is_dir() and has_model_package_manifest(path):  # insightface's task-aware pack format
            task = load_model_package(path).tasks.get(RECOGNITION_TASK)
            if task is not None and task.path.is_file():
                return _insightface_model(path, RECOGNITION_TASK), (path, RECOGNITION_TASK)
            raise self._error({"manifest.json": ("ok", "the pack's manifest")}, task.file if task else None)
        found: dict[str, tuple[str, str]] = {}
        for file in [path] if path.is_file() else sorted(path.glob("*.onnx")) if path.is_dir() else []:
            try:
                model = _insightface_model(file) if file.suffix == ".onnx" else None
            except (Fail, InvalidArgument, InvalidProtobuf) as err:
                found[file.name] = ("BROKEN", f"onnxruntime cannot read it ({type(err).__name__}): a partial download?")
                continue
            task = getattr(model, "taskname", None)
            if task == RECOGNITION_TASK:
                return model, (file, None)
            found[file.name] = ("ok", f"a {task} model, not used" if task else "not a model insightface knows")
        raise self._error(found, path.name if path.suffix == ".onnx" and not path.exists() else None)

    def _error(self, found: dict[str, tuple[str, str]], expected: str | None) -> IdentityModelError:
        """IdentityModelError listing the files ``model_path`` holds and the recognition model it lacks."""
        state = "a folder" if self.model_path.is_dir() else "a file" if self.model_path.exists() else "not found"
        lines = [f"no ArcFace recognition model at {self.model_path} ({state}); expected these files:"]
        lines += [f"  {status:8} {name} ({note})" for name, (status, note) in found.items()]
        lines.append(f"  {'MISSING':8} {expected or ARCFACE_EXPECTED}")
        lines.append(f"  get them from {ARCFACE_SOURCE}; nothing is downloaded")
        return IdentityModelError("\n".join(lines))

    @property
    def model(self) -> Any:
        """insightface's ``ArcFaceONNX`` (loaded again in an unpickled copy)."""
        if self._model is None:
            self._model = _insightface_model(*self._source)
        return self._model

    @staticmethod
    def aligned_chip(image: np.ndarray, landmarks: Landmarks, size: int = 112) -> np.ndarray:
        """``size`` x ``size`` RGB chip from insightface's ``norm_crop`` on our 5 ``ARCFACE_POINTS``."""
        from insightface.utils import face_align

        kps = landmarks.points[list(ARCFACE_POINTS), :2].astype(np.float32)
        return face_align.norm_crop(np.ascontiguousarray(image[..., :3]), landmark=kps, image_size=size)

    def embed(self, image: np.ndarray, landmarks: Landmarks) -> np.ndarray:
        """L2-normalised embedding of the face at ``landmarks`` in an RGB uint8 ``image``."""
        chip = self.aligned_chip(image, landmarks, self.model.input_size[0])
        # get_feat takes BGR chips (as cv2.imread gives) and swaps them to the RGB the model expects
        output = self.model.get_feat(cv2.cvtColor(chip, cv2.COLOR_RGB2BGR)).reshape(-1).astype(np.float64)
        return output / max(float(np.linalg.norm(output)), 1e-12)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine distance between two embeddings (no same-person threshold is claimed)."""
        return float(cosine_distance(a, b))

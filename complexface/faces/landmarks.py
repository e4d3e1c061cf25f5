"""Face detection and 478-point landmarks with the MediaPipe models shipped in the wheel."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from complexface.errors import UserError

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

N_LANDMARKS = 478

# MediaPipe face-mesh indices (subject's right eye is on the image left).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109]
JAW_CONTOUR = [234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365,
               397, 288, 361, 323, 454]
"""Lower face contour from the image-left ear, past the chin (152), to the image-right ear."""
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
"""The inner-lip contours from the image-left to the image-right mouth corner (which they share)."""
IRIS_CENTERS = (468, 473)
IRIS = tuple(range(468, 478))
"""The two irises: centre and four rim points each."""
EYE_CORNERS = ((33, 133), (362, 263))
"""(outer, inner) of the image-left eye, then (inner, outer) of the image-right eye."""


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """Hide the native (C++) log lines MediaPipe prints while its graphs start and run."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class NoFaceError(UserError, ValueError):
    """No usable face in a photo; the message says why and what to do."""


@dataclass(frozen=True)
class Landmarks:
    """478 face-mesh points of one face in photo pixels: columns x, y, z (z in x's scale)."""

    points: np.ndarray

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]

    @property
    def eye_centers(self) -> np.ndarray:
        """(2, 2): iris centres, image-left eye first."""
        return self.points[list(IRIS_CENTERS), :2]

    @property
    def down(self) -> np.ndarray:
        """Unit vector (x, y) pointing down the face: perpendicular to the eye line."""
        left, right = self.eye_centers
        across = (right - left) / max(float(np.linalg.norm(right - left)), 1e-9)
        return np.array([-across[1], across[0]])

    @property
    def interocular(self) -> float:
        left, right = self.eye_centers
        return float(np.linalg.norm(right - left))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Face box (x0, y0, x1, y1) of the face oval."""
        oval = self.points[FACE_OVAL, :2]
        x0, y0 = oval.min(axis=0)
        x1, y1 = oval.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def width(self) -> float:
        x0, _, x1, _ = self.box
        return x1 - x0

    def transformed(self, matrix: np.ndarray) -> Landmarks:
        """Apply a 2x3 similarity transform (z scales with it)."""
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        xy = self.xy @ matrix[:, :2].T + matrix[:, 2]
        return Landmarks(np.column_stack([xy, self.points[:, 2] * scale]))


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class LandmarkDetector:
    """Finds every face in a photo and fits the 478-point mesh to each.

    Faces are found by BlazeFace (short range, then full range if none), each one is cropped
    with margin and meshed on its own, so small faces in large photos work too.
    MediaPipe graphs are created lazily, once per process.
    """

    def __init__(self, min_confidence: float = 0.5, max_faces: int = 10) -> None:
        self.min_confidence = min_confidence
        self.max_faces = max_faces
        self._detectors: list = []
        self._mesh = None

    def __getstate__(self) -> dict:
        """Picklable before and after use: the MediaPipe graphs are made again where it is unpickled."""
        return {**self.__dict__, "_detectors": [], "_mesh": None}

    def _load(self) -> None:
        if self._mesh is not None:
            return
        with silenced_stderr():
            from mediapipe.python.solutions import face_detection, face_mesh

            self._detectors = [
                face_detection.FaceDetection(model_selection=m, min_detection_confidence=self.min_confidence)
                for m in (0, 1)
            ]
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=self.min_confidence,
            )

    def _boxes(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        h, w = image.shape[:2]
        for detector in self._detectors:
            with silenced_stderr():
                result = detector.process(image)
            boxes = []
            for det in result.detections or []:
                rel = det.location_data.relative_bounding_box
                box = (rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h)
                if all(_iou(box, other) < 0.3 for other in boxes):
                    boxes.append(box)
            if boxes:
                return boxes[: self.max_faces]
        return []

    def detect(self, image: np.ndarray) -> list[Landmarks]:
        """All faces in an RGB uint8 photo, largest first."""
        self._load()
        h, w = image.shape[:2]
        faces: list[Landmarks] = []
        for x0, y0, x1, y1 in self._boxes(image):
            side = 2.2 * max(x1 - x0, y1 - y0)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            right, bottom = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
            patch = image[top:bottom, left:right]
            ph, pw = patch.shape[:2]
            side_px = max(ph, pw)
            patch = np.pad(patch, ((0, side_px - ph), (0, side_px - pw), (0, 0)))
            with silenced_stderr():
                result = self._mesh.process(patch)
            if not result.multi_face_landmarks:
                continue
            pts = np.array([(p.x * side_px + left, p.y * side_px + top, p.z * side_px)
                            for p in result.multi_face_landmarks[0].landmark])
            mesh = Landmarks(pts)
            if all(_iou(mesh.box, other.box) < 0.3 for other in faces):
                faces.append(mesh)
        faces.sort(key=lambda f: -f.width)
        return faces

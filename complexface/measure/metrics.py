"""Per-edit metrics: requested vs measured AU change, leakage, identity, geometry, background.

Landmarks are re-detected on the source crop and on every edited crop with the same detector,
so an edit is judged by what a face tracker sees in its pixels, whatever the editor.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from complexface.au import EDITABLE, AUEdit
from complexface.faces.align import face_mask
from complexface.faces.landmarks import LandmarkDetector, Landmarks
from complexface.measure.au_estimate import change, estimate
from complexface.measure.geometry import background_rmse, head_pose, pose_change, shape_change, shape_measures
from complexface.measure.identity import ArcFaceIdentity, DlibIdentity, cosine_distance, distance
from complexface.settings import require

GEOMETRY = ("nose_length", "nose_width", "face_ratio", "eye_size", "yaw", "pitch", "roll")
"""Absolute geometry columns of ``measures.csv``."""
METRICS = ("on_target", "off_target", "id_dist", "nose_len_change", "bg_rmse", "nose_width_change",
           "face_ratio_change", "eye_size_change", "pose_change_deg")
"""Scalar columns of ``metrics.csv`` after the req_AUn / d_AUn columns."""


def requested(edit: AUEdit) -> dict[str, float]:
    return {f"req_{au}": float(edit.values.get(au, 0.0)) for au in EDITABLE}


def target_scores(edit: AUEdit, delta: dict[str, float]) -> tuple[float, float]:
    """(on_target, off_target): mean measured change in the requested direction over the requested
    AUs (NaN for the zero edit), and mean |change| over the AUs not requested (leakage)."""
    asked = [au for au in EDITABLE if au in edit.values]
    others = [au for au in EDITABLE if au not in edit.values]
    on = float(np.mean([delta[au] * np.sign(edit.values[au]) for au in asked])) if asked else float("nan")
    off = float(np.mean([abs(delta[au]) for au in others])) if others else float("nan")
    return on, off


def track_landmarks(source: np.ndarray, edited: np.ndarray, landmarks: Landmarks) -> Landmarks:
    """Follow ``landmarks`` from ``source`` into ``edited`` with pyramidal Lucas-Kanade optical flow
    (points the flow loses keep their place; z is kept)."""
    gray = [cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) for img in (source, edited)]
    start = landmarks.xy.astype(np.float32).reshape(-1, 1, 2)
    moved, found, _ = cv2.calcOpticalFlowPyrLK(*gray, start, None, winSize=(21, 21), maxLevel=3,
                                               criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    points = landmarks.points.copy()
    ok = found.ravel() == 1
    points[ok, :2] = moved.reshape(-1, 2)[ok]
    return Landmarks(points)


class EditMeasurer:
    """Measures edits of one aligned face.

    ``identity``: a DlibIdentity (default), an ArcFaceIdentity, or None to skip identity distance.
    ``landmarks``: how the edited face's landmarks are found: ``"detect"`` (MediaPipe again, on the
    edit alone: independent of the source, but its face prior under-reads brow-lowering, cheek and
    nose-wing motion) or ``"flow"`` (the source landmarks followed into the edit by optical flow:
    sees every pixel motion, assumes the edit keeps the source's texture).
    """

    def __init__(self, identity: DlibIdentity | ArcFaceIdentity | None = None, min_confidence: float = 0.3,
                 landmarks: str = "detect") -> None:
        require(landmarks in ("detect", "flow"), f"measure landmarks must be 'detect' or 'flow', got {landmarks!r}")
        self.identity = identity
        self.mode = landmarks
        self.detector = LandmarkDetector(min_confidence=min_confidence)

    def landmarks(self, image: np.ndarray) -> Landmarks | None:
        found = self.detector.detect(image)
        return found[0] if found else None

    def _identity_distance(self, a: np.ndarray, b: np.ndarray) -> float:
        if self.identity is None:
            return float("nan")
        return cosine_distance(a, b) if isinstance(self.identity, ArcFaceIdentity) else distance(a, b)

    def measure(self, image: np.ndarray, edits: Sequence[AUEdit], outputs: Sequence[np.ndarray]) -> list[dict]:
        """One dict per edit of the source crop ``image``: ``status``, ``reason``, req_AUn, d_AUn and METRICS."""
        source = self.landmarks(image)
        if source is None:
            return [{"status": "failed", "reason": "no face found in the source crop when measuring"} for _ in edits]
        source_id = self.identity.embed(image, source) if self.identity else None
        region = face_mask(source, image.shape[0])
        rows = []
        for edit, out in zip(edits, outputs, strict=True):
            edited = track_landmarks(image, out, source) if self.mode == "flow" else self.landmarks(out)
            row: dict = {"status": "ok", "reason": "", **requested(edit)}
            if edited is None:
                rows.append({**row, "status": "failed", "reason": "no face found in the edited crop"})
                continue
            delta = change(source.points, edited.points)
            row.update({f"d_{au}": float(delta[au]) for au in EDITABLE})
            row["on_target"], row["off_target"] = target_scores(edit, delta)
            edit_id = self.identity.embed(out, edited) if self.identity else None
            row["id_dist"] = self._identity_distance(source_id, edit_id) if self.identity else float("nan")
            shapes = shape_change(source.points, edited.points)
            row["nose_len_change"] = float(shapes["nose_length_change"])
            row.update({k: float(shapes[k]) for k in ("nose_width_change", "face_ratio_change", "eye_size_change")})
            row["pose_change_deg"] = float(np.linalg.norm(list(pose_change(source.points, edited.points).values())))
            row["bg_rmse"] = background_rmse(image, out, region)
            rows.append(row)
        return rows

    def measure_photo(self, image: np.ndarray) -> dict:
        """Absolute AU estimates and geometry of the largest face in a photo (``measures.csv`` row)."""
        found = self.landmarks(image)
        if found is None:
            return {"status": "failed", "reason": "no face found"}
        row: dict = {"status": "ok", "reason": ""}
        row.update({au: float(v) for au, v in estimate(found.points).items()})
        row.update({k: float(v) for k, v in shape_measures(found.points).items()})
        row.update({k: float(v) for k, v in head_pose(found.points).items()})
        return row

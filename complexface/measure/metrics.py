"""Per-edit metrics: requested vs measured AU change, leakage, identity, geometry, background.

The edit's landmarks are, by default, the source's landmarks carried into the edit by dense
correspondence (``complexface.faces.tracking``), so an edit is judged by how the source's own
points moved; ``landmarks="detect"`` re-detects them on the edit alone instead (independent of the
source, but a face tracker's prior under-reads some motions).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from complexface.au import EDITABLE, AUEdit
from complexface.faces.align import face_mask
from complexface.faces.image_io import content_key
from complexface.faces.landmarks import LandmarkDetector, Landmarks
from complexface.faces.tracking import LandmarkTracker
from complexface.facs_motion import SIDED
from complexface.measure.au_change import changes, leakage_aus
from complexface.measure.au_estimate import estimate
from complexface.measure.geometry import background_rmse, head_pose, pose_change, shape_change, shape_measures
from complexface.measure.identity import ArcFaceIdentity, DlibIdentity
from complexface.settings import require

GEOMETRY = ("nose_length", "nose_width", "face_ratio", "eye_size", "yaw", "pitch", "roll")
"""Absolute geometry columns of ``measures.csv``."""
METRICS = ("on_target", "off_target", "id_dist", "nose_len_change", "bg_rmse", "nose_width_change",
           "face_ratio_change", "eye_size_change", "pose_change_deg")
"""Scalar columns of ``metrics.csv`` after the req_AUn / d_AUn columns."""
SIDE_COLUMNS = tuple(f"d_{key}" for key in SIDED)
"""Per-side measured changes (``d_AU12L``: the person's left), after METRICS."""
TRACKING = ("track_err_px", "untrusted")
"""How the landmarks were found: ``motion_error`` against the editor's known landmark motion (px, when the
editor knows it) and the number of points the flow's forward-backward check rejected."""
LANDMARK_MODES = ("track", "detect")


def motion_error(measured: np.ndarray, truth: np.ndarray, moved: float = 0.5) -> float:
    """Median distance (px) between measured and true (478, 2) landmark motions, over the landmarks the
    edit moved by more than ``moved`` px (all of them when it moved none)."""
    errors = np.linalg.norm(measured - truth, axis=1)
    moving = np.linalg.norm(truth, axis=1) > moved
    return float(np.median(errors[moving] if moving.any() else errors))


def requested(edit: AUEdit) -> dict[str, float]:
    """``req_AUn`` columns: the requested change of each AU (a one-sided value counts half, as in the
    mean of the two sides that ``d_AUn`` reads)."""
    return {f"req_{au}": value for au, value in zip(EDITABLE, edit.vector(), strict=True)}


def target_scores(edit: AUEdit, delta: dict[str, float]) -> tuple[float, float]:
    """(on_target, off_target): mean measured change in the requested direction over the requested
    AUs, each on the side(s) asked for (NaN for the zero edit), and mean |change| over the readings
    physically independent of the request (``au_change.leakage_aus``: leakage)."""
    asked = list(edit.values)
    others = leakage_aus(edit)
    on = float(np.mean([delta[au] * np.sign(edit.values[au]) for au in asked])) if asked else float("nan")
    off = float(np.mean([abs(delta[au]) for au in others])) if others else float("nan")
    return on, off


class EditMeasurer:
    """Measures edits of one aligned face.

    ``identity``: a DlibIdentity (default), an ArcFaceIdentity, or None to skip identity distance;
    ``identity_every``: embed about one edit in this many, since an embedding costs several times the
    rest of a measurement. The choice is fixed by the edit's label (a hash), so every face of a sweep
    gets identity on the same edits (groups compare on the same edits) and a rerun picks the same ones;
    the others get NaN. ``landmarks``: ``"track"`` (default) or ``"detect"`` (module docstring).
    """

    def __init__(self, identity: DlibIdentity | ArcFaceIdentity | None = None, min_confidence: float = 0.3,
                 landmarks: str = "track", identity_every: int = 1, tracker: LandmarkTracker | None = None) -> None:
        require(landmarks in LANDMARK_MODES,
                f"measure landmarks must be one of {', '.join(LANDMARK_MODES)}, got {landmarks!r}")
        require(identity_every >= 1, f"measure identity_every must be >= 1, got {identity_every}")
        self.identity = identity
        self.identity_every = identity_every
        self.mode = landmarks
        self.detector = LandmarkDetector(min_confidence=min_confidence)
        self.tracker = tracker or LandmarkTracker(detector=self.detector)
        self._source: tuple[bytes, Landmarks | None, np.ndarray | None] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_source": None}

    def source(self, image: np.ndarray) -> tuple[Landmarks | None, np.ndarray | None]:
        """The source crop's landmarks and face region, kept for the last source (a closed loop measures
        the same source at every iteration)."""
        key = content_key(image[::17, ::17])
        if self._source is None or self._source[0] != key:
            found = self.landmarks(image)
            self._source = (key, found, face_mask(found, image.shape[0]) if found is not None else None)
        return self._source[1], self._source[2]

    def landmarks(self, image: np.ndarray) -> Landmarks | None:
        found = self.detector.detect(image)
        return found[0] if found else None

    def wants_identity(self, edit: AUEdit) -> bool:
        """Whether this edit is in the ``identity_every`` sample (the same edits on every face)."""
        return self.identity is not None and zlib.crc32(edit.label.encode()) % self.identity_every == 0

    def _edited_landmarks(self, image: np.ndarray, out: np.ndarray, source: Landmarks) -> tuple[Landmarks | None, dict]:
        """The edit's landmarks and how they were found (TRACKING fields)."""
        if self.mode == "detect":
            return self.landmarks(out), {}
        tracked = self.tracker.track(image, out, source)
        return tracked.landmarks, {"untrusted": int((~tracked.trusted).sum())}

    def measure(self, image: np.ndarray, edits: Sequence[AUEdit], outputs: Sequence[np.ndarray],
                truth: Sequence[np.ndarray | None] | None = None) -> list[dict]:
        """One dict per edit of the source crop ``image``: ``status``, ``reason``, req_AUn, d_AUn, METRICS,
        the per-side changes and TRACKING. ``truth``: per edit, the (478, 2) landmark motion the editor
        applied, when it knows it (scored as ``track_err_px``)."""
        source, region = self.source(image)
        if source is None:
            return [{"status": "failed", "reason": "no face found in the source crop when measuring"} for _ in edits]
        rows, found = [], []
        for i, (edit, out) in enumerate(zip(edits, outputs, strict=True)):
            edited, how = self._edited_landmarks(image, out, source)
            row: dict = {"status": "ok", "reason": "", **requested(edit), **how}
            if edited is None:
                row.update(status="failed", reason="no face found in the edited crop")
            else:
                found.append((row, edit, out, edited))
                if truth is not None and truth[i] is not None:
                    row["track_err_px"] = motion_error(edited.xy - source.xy, truth[i])
            rows.append(row)
        if found:
            self._fill(image, source, region, found)
        return rows

    def _fill(self, image: np.ndarray, source: Landmarks, region: np.ndarray,
              found: list[tuple[dict, AUEdit, np.ndarray, Landmarks]]) -> None:
        """AU change, leakage, geometry, background and (sampled) identity for the edits whose landmarks
        were found; the source-side work is done once for all of them."""
        points = np.stack([edited.points for *_, edited in found])
        deltas = changes(source.points, points, [edit.values for _, edit, _, _ in found], sides=True)
        shapes = shape_change(source.points, points)
        poses = np.linalg.norm(np.stack(list(pose_change(source.points, points).values())), axis=0)
        source_id = None
        for k, ((row, edit, out, edited), delta) in enumerate(zip(found, deltas, strict=True)):
            row.update({f"d_{au}": v for au, v in delta.items()})
            row["on_target"], row["off_target"] = target_scores(edit, delta)
            row["id_dist"] = float("nan")
            if self.wants_identity(edit):
                source_id = self.identity.embed(image, source) if source_id is None else source_id
                row["id_dist"] = self.identity.distance(source_id, self.identity.embed(out, edited))
            row["nose_len_change"] = float(shapes["nose_length_change"][k])
            row.update({key: float(shapes[key][k]) for key in ("nose_width_change", "face_ratio_change",
                                                              "eye_size_change")})
            row["pose_change_deg"] = float(poses[k])
            row["bg_rmse"] = background_rmse(image, out, region)

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

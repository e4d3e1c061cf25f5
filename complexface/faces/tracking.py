"""Carrying a face's landmarks into an edit of it by dense correspondence.

An edited crop shows the same face in the same place, so the edit's landmarks are the source's
landmarks moved by the pixel motion between the two images: DIS optical flow (dense, variational
refinement) from source to edit, computed on the window where the images differ (pixels that did
not change did not move). A forward-backward check marks the points the flow cannot be trusted on:
the backward flow (edit to source) must bring each tracked point back to where it started, within
``tolerance`` px plus ``relative`` x its motion. When at least ``min_untrusted`` points fail (a
mouth opening onto new content: the inner lips), they take the motion a landmark detector sees
instead: the detector's landmarks on the edit minus its landmarks on the source, which cancels its
per-face bias (a few isolated failures keep the flow's answer, which is closer than a detector's
there). When more than ``max_untrusted`` of the points fail, the edit is not a deformation of the
source (a regenerated face) and the detector's landmarks are used for all of them.

An inner-lip point sits on the seam between the lips, where an opening mouth shows new content; it
moves with its own lip, so it takes the flow found ``LIP_DEPTH`` inside that lip (up for the upper
lip, down for the lower one). A lid-margin point likewise sits where the lid slides over the eyeball,
which does not move with it, so it takes the flow ``LID_DEPTH`` inside its own lid.

The flow is DIS's medium preset made cheaper (patch stride 4, 12 gradient-descent and 3 variational
iterations): on the warp editor's edits it is within 0.05 px as close to the true motion (median
0.48 px vs 0.43 px on the moving landmarks) at about half the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from complexface.faces.image_io import content_key
from complexface.faces.landmarks import LOWER_INNER_LIP, UPPER_INNER_LIP, LandmarkDetector, Landmarks

MIN_WINDOW = 64
"""Smallest flow window side (px): DIS needs a few pyramid levels."""
LIP_DEPTH = 0.04
"""Inner-lip points follow the flow this far (IOD) inside their own lip, away from the seam."""
LID_DEPTH = 0.02
"""Lid-margin points follow the flow this far (IOD) inside their own lid, away from the eyeball."""
UPPER_LID_MARGIN = (246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398)
LOWER_LID_MARGIN = (7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382)
"""The lid margins between the eye corners (both eyes)."""


@dataclass(frozen=True)
class Tracked:
    """The edit's landmarks and how they were found."""

    landmarks: Landmarks
    trusted: np.ndarray
    """(478,) bool: the flow passed the forward-backward check (False: the detector's motion was used)."""
    method: str
    """``flow`` (the flow's answer for every point), ``flow+detect`` (the failed points from the detector) or
    ``detect``."""


class LandmarkTracker:
    """Tracks landmarks from a crop into its edit (module docstring).

    ``tolerance``/``relative``: forward-backward check in px and as a share of the point's motion;
    ``margin``: px added around the changed window; ``min_untrusted``: this many failed points call the
    detector in; ``max_untrusted``: above this share of failed points the detector is used for every
    point; ``detector``: the landmark detector (a default MediaPipe one is made on first need).
    """

    def __init__(self, tolerance: float = 2.0, relative: float = 0.25, margin: int = 24, min_untrusted: int = 5,
                 max_untrusted: float = 0.3, detector: LandmarkDetector | None = None) -> None:
        self.tolerance, self.relative, self.margin = tolerance, relative, margin
        self.min_untrusted, self.max_untrusted = min_untrusted, max_untrusted
        self.detector = detector
        self._flows: tuple | None = None
        self._source: tuple[bytes, Landmarks] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_flows": None, "_source": None}

    def _dis(self) -> tuple:
        if self._flows is None:
            forward = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            forward.setGradientDescentIterations(12)
            forward.setVariationalRefinementIterations(3)
            forward.setPatchStride(4)
            self._flows = (forward, cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST))
        return self._flows

    def _window(self, changed: np.ndarray) -> tuple[int, int, int, int] | None:
        """(y0, y1, x0, x1) around the changed pixels, grown by ``margin`` and to MIN_WINDOW."""
        rows, cols = np.nonzero(changed)
        if rows.size == 0:
            return None
        h, w = changed.shape
        spans = []
        for lo, hi, size in ((rows.min(), rows.max() + 1, h), (cols.min(), cols.max() + 1, w)):
            lo, hi = max(0, lo - self.margin), min(size, hi + self.margin)
            grow = max(0, min(MIN_WINDOW, size) - (hi - lo))
            lo = max(0, lo - grow // 2 - grow % 2)
            spans.append((lo, min(size, max(hi, lo + min(MIN_WINDOW, size)))))
        (y0, y1), (x0, x1) = spans
        return y0, y1, x0, x1

    def flow(self, source: np.ndarray, edited: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(motion (N, 2) px, forward-backward error (N,) px) of ``points`` from ``source`` to ``edited``."""
        a, b = (cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY) for img in (source, edited))
        motion, error = np.zeros((len(points), 2)), np.zeros(len(points))
        window = self._window(a != b)
        if window is None:
            return motion, error
        y0, y1, x0, x1 = window
        local = points - (x0, y0)
        inside = np.all((local >= 0) & (local <= (x1 - x0 - 1, y1 - y0 - 1)), axis=1)
        if not inside.any():
            return motion, error
        forward_dis, backward_dis = self._dis()
        a, b = np.ascontiguousarray(a[y0:y1, x0:x1]), np.ascontiguousarray(b[y0:y1, x0:x1])
        forward = _sample(forward_dis.calc(a, b, None), local[inside])
        back = _sample(backward_dis.calc(b, a, None), local[inside] + forward)
        motion[inside] = forward
        error[inside] = np.linalg.norm(forward + back, axis=1)
        return motion, error

    def track(self, source: np.ndarray, edited: np.ndarray, landmarks: Landmarks) -> Tracked:
        """The landmarks of ``source`` (crop pixels) carried into ``edited`` (same size); z is kept."""
        if source.shape != edited.shape:
            raise ValueError(f"source and edit differ in shape: {source.shape} vs {edited.shape}")
        motion, error = self.flow(source, edited, landmarks.xy + margin_offsets(landmarks))
        trusted = error <= self.tolerance + self.relative * np.linalg.norm(motion, axis=1)
        points = landmarks.points.copy()
        points[:, :2] += motion
        if (~trusted).sum() < self.min_untrusted:
            return Tracked(Landmarks(points), trusted, "flow")
        self.detector = self.detector or LandmarkDetector(min_confidence=0.3)
        found = self.detector.detect(edited)
        if not found:
            return Tracked(Landmarks(points), trusted, "flow")
        seen = found[0].points - self._detected_source(source, landmarks).points
        if trusted.mean() < 1 - self.max_untrusted:
            detected = landmarks.points + seen
            return Tracked(Landmarks(detected), np.zeros_like(trusted), "detect")
        points[~trusted] = landmarks.points[~trusted] + seen[~trusted]
        return Tracked(Landmarks(points), trusted, "flow+detect")

    def _detected_source(self, source: np.ndarray, landmarks: Landmarks) -> Landmarks:
        """The detector's own landmarks on the source (the face closest to ``landmarks``; ``landmarks``
        when it finds none), kept for the last source seen."""
        key = content_key(landmarks.points, source[::31, ::31])
        if self._source is None or self._source[0] != key:
            found = self.detector.detect(source)
            best = min(found, key=lambda f: float(np.abs(f.xy - landmarks.xy).mean())) if found else landmarks
            self._source = (key, best)
        return self._source[1]


def margin_offsets(landmarks: Landmarks) -> np.ndarray:
    """(478, 2) px: from each inner-lip point ``LIP_DEPTH`` into its own lip and from each lid-margin point
    ``LID_DEPTH`` into its own lid (zero for other points and the mouth and eye corners)."""
    offsets = np.zeros((len(landmarks.points), 2))
    down = float(np.linalg.norm(landmarks.points[473] - landmarks.points[468])) * landmarks.down
    for ids, depth in ((UPPER_INNER_LIP[1:-1], -LIP_DEPTH), (LOWER_INNER_LIP[1:-1], LIP_DEPTH),
                       (UPPER_LID_MARGIN, -LID_DEPTH), (LOWER_LID_MARGIN, LID_DEPTH)):
        offsets[list(ids)] = depth * down
    return offsets


def _sample(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (H, W, 2) flow field at (N, 2) pixel points."""
    xy = points.astype(np.float32)
    return cv2.remap(flow, xy[None, :, 0], xy[None, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]

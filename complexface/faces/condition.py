"""The MagicFace ``bg`` condition: person painted black, background kept, 17 jawline dots."""

from __future__ import annotations

import cv2
import numpy as np

from complexface.faces.align import AlignedFace
from complexface.faces.landmarks import JAW_CONTOUR, silenced_stderr


def jawline_points(face: AlignedFace, count: int = 17) -> np.ndarray:
    """``count`` points evenly spaced (by arc length) along the lower face contour, like the
    68-point scheme's points 0-16 (image-left ear, chin, image-right ear)."""
    contour = face.landmarks.points[JAW_CONTOUR, :2]
    steps = np.linalg.norm(np.diff(contour, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    targets = np.linspace(0.0, arc[-1], count)
    return np.column_stack([np.interp(targets, arc, contour[:, i]) for i in range(2)])


def rainbow(count: int) -> list[tuple[int, int, int]]:
    """``count`` RGB colours along OpenCV's rainbow colormap."""
    ramp = np.linspace(0, 255, count).astype(np.uint8).reshape(-1, 1)
    bgr = cv2.applyColorMap(ramp, cv2.COLORMAP_RAINBOW).reshape(-1, 3)
    return [tuple(int(c) for c in px[::-1]) for px in bgr]


class BackgroundCondition:
    """Builds ``bg`` images with MediaPipe's bundled selfie segmentation (created lazily)."""

    def __init__(self, threshold: float = 0.5, dot_radius: float = 2.0) -> None:
        self.threshold = threshold
        self.dot_radius = dot_radius
        self._segmenter = None

    def person_mask(self, image: np.ndarray) -> np.ndarray:
        """Boolean mask of the person (face, hair, neck, clothes)."""
        if self._segmenter is None:
            with silenced_stderr():
                from mediapipe.python.solutions import selfie_segmentation

                self._segmenter = selfie_segmentation.SelfieSegmentation(model_selection=0)
        with silenced_stderr():
            result = self._segmenter.process(np.ascontiguousarray(image))
        return result.segmentation_mask > self.threshold

    def __call__(self, face: AlignedFace) -> np.ndarray:
        """The bg condition image for an aligned face (same size as the crop)."""
        bg = face.image.copy()
        bg[self.person_mask(face.image)] = 0
        radius = max(1, round(self.dot_radius * face.size / 512))
        for (x, y), colour in zip(jawline_points(face), rainbow(17), strict=True):
            cv2.circle(bg, (round(x), round(y)), radius, colour, thickness=-1, lineType=cv2.LINE_AA)
        return bg

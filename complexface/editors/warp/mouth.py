"""What fills a newly opened mouth: a dark cavity with a soft gradient and a hint of upper teeth."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from complexface.editors.displacement import jacobian, sample, upsample
from complexface.editors.warp.geometry import Geometry, smoothstep
from complexface.faces.align import AlignedFace
from complexface.faces.landmarks import LOWER_INNER_LIP, UPPER_INNER_LIP

TOOTH_EDGES = np.array([0.0, 0.36, 0.6, 0.76])
"""Gaps between the upper incisors and canines, in half mouth widths from the centre (frontal view)."""
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
INNER_LIPS = UPPER_INNER_LIP + LOWER_INNER_LIP[-2:0:-1]


@dataclass
class MouthModel:
    """What fills a newly opened mouth: a dark cavity with a soft gradient and a hint of upper teeth.

    ``above`` (the seam gate) and ``span`` are per-face grid fields; a pixel of the edited crop
    belongs to the new cavity when its source lies in the seam band and the warp stretched it.
    ``lip_offsets`` lead from each inner-lip landmark to just outside that band, into its own lip
    (zero for other landmarks; see ``WarpEditor.landmark_motion``).
    """

    above: np.ndarray
    span: np.ndarray
    across: np.ndarray
    """Position along the mouth in half mouth widths (0 at its centre), a grid field."""
    lip: np.ndarray
    teeth: np.ndarray | None
    """Colour of the hinted upper teeth; None when the source mouth is open (its own teeth show)."""
    unit: float
    half_mouth_px: float
    lip_offsets: np.ndarray

    @classmethod
    def of(cls, face: AlignedFace, geometry: Geometry, step: int) -> MouthModel:
        mask = np.zeros(face.image.shape[:2], np.uint8)
        xy = face.landmarks.xy
        cv2.fillPoly(mask, [np.round(xy[list(OUTER_LIPS)]).astype(np.int32)], 1)
        cv2.fillPoly(mask, [np.round(xy[list(INNER_LIPS)]).astype(np.int32)], 0)
        lip = np.median(face.image[mask > 0], axis=0) if mask.any() else np.array([150.0, 90, 90])
        ring = cv2.dilate(mask, np.ones((25, 25), np.uint8)) > mask
        bright = np.percentile(face.image[ring], 90, axis=0)
        light = min(1.0, 0.45 + 0.55 * float(bright.mean()) / 220)
        teeth = 0.8 * np.array([228.0, 220, 204]) * light + 0.2 * bright if geometry.mouth_gap < 0.02 else None
        offsets = np.zeros_like(xy)
        offsets[list(UPPER_INNER_LIP[1:-1])] = -1.5 * step * geometry.frame.ey
        offsets[list(LOWER_INNER_LIP[1:-1])] = 1.5 * step * geometry.frame.ey
        across = (geometry.U - geometry.mouth_center) / geometry.mouth_half
        return cls(geometry.above_seam().astype(np.float32), geometry.span.astype(np.float32),
                   across.astype(np.float32), lip.astype(np.float32), teeth, geometry.frame.unit,
                   geometry.mouth_half * geometry.frame.unit, offsets)

    def paint(self, out: np.ndarray, back: np.ndarray, window: tuple[int, int, int, int], step: int) -> None:
        """Composite the cavity into ``out`` (in place) where the warp opened the seam band."""
        r0, _, c0, _ = window
        gy, gx = np.indices(back.shape[:2], dtype=np.float32)
        x, y = gx + c0 + back[..., 0] / step, gy + r0 + back[..., 1] / step
        jac = jacobian(back, step)
        stretch = 1.0 / np.maximum(jac[..., 0] * jac[..., 3] - jac[..., 1] * jac[..., 2], 1e-3)
        fields = np.dstack([sample(self.above, x, y), sample(self.span, x, y), stretch, sample(self.across, x, y)])
        rows, cols = np.nonzero((fields[..., 2] > 1.15) & (fields[..., 1] > 0) & (np.abs(fields[..., 0] - 0.5) < 0.45))
        if rows.size == 0:
            return
        a0, a1, b0, b1 = max(rows.min() - 2, 0), rows.max() + 3, max(cols.min() - 2, 0), cols.max() + 3
        block, (y0, x0) = upsample(fields[a0:a1, b0:b1], r0 + a0, c0 + b0, step, out.shape[0])
        color, alpha = self._cavity(*np.moveaxis(block, -1, 0))
        region = out[y0:y0 + block.shape[0], x0:x0 + block.shape[1]]
        region[:] = np.clip(region + (color - region) * alpha[..., None] + 0.5, 0, 255).astype(np.uint8)

    def _cavity(self, above: np.ndarray, span: np.ndarray, stretch: np.ndarray,
                across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colour and opacity of the cavity from where each pixel's source lies across the seam band.

        ``above`` runs from 1 at the upper lip to 0 at the lower lip: the cavity shades from dark
        (top) to tongue (bottom); the upper teeth show as a band of fixed height under the upper
        lip, with faint gaps between the incisors and canines (``across``: position along the mouth).
        """
        alpha = smoothstep((above - 0.06) / 0.2) * smoothstep((0.94 - above) / 0.2)
        alpha *= smoothstep((stretch - 1.15) / 0.6) * smoothstep(span / 0.2)
        tongue = smoothstep((0.55 - above) / 0.55)
        color = self.lip * (0.18 + 0.3 * tongue[..., None])
        if self.teeth is not None:
            inside = alpha > 0.5
            top = _smooth_columns(np.where(inside.any(axis=0), inside.argmax(axis=0), len(alpha)).astype(float))
            height = np.minimum(0.05 * self.unit, 0.4 * _smooth_columns(inside.sum(axis=0).astype(float)))
            depth = np.arange(len(alpha))[:, None] - top
            tooth = smoothstep((depth + 2) / 2) * smoothstep((height - depth) / 2.5) * smoothstep((span - 0.25) / 0.5)
            shade = (0.8 + 0.2 * smoothstep((depth + 1) / np.maximum(height, 1))) * (0.7 + 0.3 * span)
            gaps = np.abs(np.abs(across)[..., None] - TOOTH_EDGES).min(axis=-1) * self.half_mouth_px
            shade *= 1 - 0.18 * np.exp(-0.5 * gaps**2)
            color += (self.teeth * shade[..., None] - color) * tooth[..., None]
        return color, alpha


def _smooth_columns(values: np.ndarray, width: int = 9) -> np.ndarray:
    """Moving average along a row of per-column values (edges repeated)."""
    padded = np.pad(values, width // 2, mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")

"""MagicFace-style aligned crops and pasting edited crops back into the photo."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from complexface.faces.landmarks import Landmarks

CROP_SIZE = 512
BOX_SCALE = 1.5


@dataclass(frozen=True)
class AlignedFace:
    """A face as editors see it: the square crop, its landmarks and the photo -> crop transform."""

    image: np.ndarray
    """CROP_SIZE x CROP_SIZE x 3 uint8 RGB."""
    landmarks: Landmarks
    """In crop pixels."""
    matrix: np.ndarray
    """2x3 similarity mapping photo pixels to crop pixels."""

    @property
    def size(self) -> int:
        return self.image.shape[0]


def crop_matrix(landmarks: Landmarks, size: int = CROP_SIZE, box_scale: float = BOX_SCALE) -> np.ndarray:
    """Square box box_scale x the face-box width, centred on the face box, mapped onto size x size."""
    x0, y0, x1, y1 = landmarks.box
    side = box_scale * (x1 - x0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / side
    return np.array([[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]])


def warp_similarity(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int],
                    border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """cv2.warpAffine for a similarity, area-downscaling first when it shrinks (no aliasing)."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.8:
        factor = scale * 1.25
        h, w = image.shape[:2]
        image = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
        matrix = np.column_stack([matrix[:, :2] / factor, matrix[:, 2]])
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_LINEAR,
                          borderMode=border)


def align(photo: np.ndarray, landmarks: Landmarks, size: int = CROP_SIZE, box_scale: float = BOX_SCALE) -> AlignedFace:
    """Cut the aligned crop; parts of the box outside the photo repeat the border pixels."""
    matrix = crop_matrix(landmarks, size, box_scale)
    crop = warp_similarity(photo, matrix, (size, size))
    return AlignedFace(crop, landmarks.transformed(matrix), matrix)


FACE_MARGIN = 0.08
"""How far the face region reaches beyond the landmarks' hull, in face widths."""
JAW_DROP_ROOM = 0.8
"""How far (inter-ocular distances) the face region reaches below the landmarks' hull: room for a dropped
jaw (up to about half of this) and the skin below it that follows."""


def face_core(landmarks: Landmarks, size: int, drop: float = JAW_DROP_ROOM, scale: float = 1.0) -> np.ndarray:
    """uint8 0/1 mask (``size`` x ``scale`` square) of the convex hull of all landmarks, swept ``drop``
    inter-ocular distances straight down. The hull, not the mesh's face oval: on a turned head the far
    cheek bulges past the oval."""
    size = round(size * scale)
    mask = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull((landmarks.xy * scale).astype(np.float32))[:, 0]
    cv2.fillPoly(mask, [np.round(hull * 16).astype(np.int32)], 1, shift=4)
    length = round(drop * landmarks.interocular * scale)
    if length > 0:
        mask = cv2.dilate(mask, np.ones((length + 1, 1), np.uint8), anchor=(0, length))
    return mask


def face_mask(landmarks: Landmarks, size: int, grow: float = FACE_MARGIN, scale: float = 1.0,
              drop: float = JAW_DROP_ROOM) -> np.ndarray:
    """Float 0/1 mask (``size`` x ``scale`` square) of the face region: ``face_core`` grown by ``grow`` x face width.

    The one face region: the background metric compares the pixels outside it, and the warp editor
    leaves every pixel outside it unchanged (its motion fades to zero inside it).
    """
    core = face_core(landmarks, size, drop, scale)
    radius = max(1, round(grow * landmarks.width * scale))
    mask = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    return mask.astype(np.float32)


def paste_mask(face: AlignedFace, edited: np.ndarray, threshold: float = 3.0) -> np.ndarray:
    """Soft blend mask in crop space: the face region (without the jaw-drop room: a dropped jaw is among
    the changed pixels) plus wherever the edit changed pixels.

    Computed at quarter resolution (the mask is smooth) and resized to the crop.
    """
    q = 0.25
    small = round(face.size * q)
    diff = np.abs(edited.astype(np.int16) - face.image.astype(np.int16)).max(axis=2).astype(np.float32)
    changed = (cv2.resize(diff, (small, small), interpolation=cv2.INTER_AREA) > threshold / 4).astype(np.uint8)
    radius = max(1, round(0.03 * face.landmarks.width * q))
    changed = cv2.dilate(changed, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2))
    mask = np.maximum(face_mask(face.landmarks, face.size, scale=q, drop=0.0), changed.astype(np.float32))
    feather = max(0.5, 0.04 * face.landmarks.width * q)
    mask = cv2.GaussianBlur(mask, (0, 0), feather)
    ramp = np.clip(np.minimum(np.arange(small), small - 1 - np.arange(small)) / (2 * feather), 0, 1)
    mask *= np.minimum.outer(ramp, ramp)
    return cv2.resize(mask, (face.size, face.size), interpolation=cv2.INTER_LINEAR)


def paste_back(photo: np.ndarray, face: AlignedFace, edited: np.ndarray) -> np.ndarray:
    """Put an edited crop back into the full-resolution photo with a soft blend.

    Only the photo region under the crop is touched; an unchanged crop returns the photo exactly.
    """
    if np.array_equal(edited, face.image):
        return photo.copy()
    h, w = photo.shape[:2]
    inverse = cv2.invertAffineTransform(face.matrix)
    corners = np.array([[0, 0], [face.size, face.size]], np.float64) @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, [w, h])
    shifted = inverse.copy()
    shifted[:, 2] -= (x0, y0)
    size = (int(x1 - x0), int(y1 - y0))
    warped = warp_similarity(edited, shifted, size).astype(np.float32)
    alpha = cv2.warpAffine(paste_mask(face, edited), shifted, size, flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    out = photo.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region + alpha * (warped - region) + 0.5, 0, 255).astype(np.uint8)
    return out

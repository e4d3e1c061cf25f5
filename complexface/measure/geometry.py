"""Pose-free face geometry from 478 MediaPipe landmarks: frontal frame, head pose, shape
ratios, and the background RMSE between two aligned images.

Frontal frame: the 3D landmarks (x, y, z; z in x's scale) are fitted by a similarity
(Umeyama/Kabsch: rotation, translation, scale) on head-rigid points (forehead, nose bridge,
eye corners, temples) onto a symmetric neutral template built from the bundled neutral
portraits (``assets/frontal_template.npz``). In that frame x points to the image right, y
down, z away from the camera, the origin is the template's iris midpoint, and one unit is the
subject's own inter-ocular distance (IOD, iris centre to iris centre, in 3D). Gaze does not
move the origin; head rotation drops out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from complexface.faces.landmarks import IRIS_CENTERS, N_LANDMARKS, Landmarks

TEMPLATE_PATH = Path(__file__).resolve().parent / "assets" / "frontal_template.npz"

RIGID = (10, 109, 338, 151, 9, 8, 168, 6, 197, 195, 5, 33, 133, 362, 263,
         127, 356, 162, 389, 21, 251, 234, 454)
"""Landmarks that facial expressions barely move: forehead, nose bridge, eye corners, temples."""
NASION, NOSE_TIP = 168, 1
ALAR = (129, 358)
"""Outer edges of the nostril wings (image-left, image-right)."""
FACE_TOP, CHIN, CHEEK_SIDES = 10, 152, (234, 454)
UPPER_LID, LOWER_LID = (159, 386), (145, 374)

PointsLike = Union[Landmarks, np.ndarray, Sequence[Landmarks], Sequence[np.ndarray]]
"""One face (Landmarks or a (478, 3) array) or many ((N, 478, 3) array or a list)."""


def as_points(faces: PointsLike) -> tuple[np.ndarray, bool]:
    """``(points (N, 478, 3) float64, single)``; ``single`` says one face was given."""
    if isinstance(faces, Landmarks):
        return faces.points[None].astype(np.float64), True
    if isinstance(faces, np.ndarray):
        points = faces.astype(np.float64)
    else:
        points = np.stack([f.points if isinstance(f, Landmarks) else np.asarray(f) for f in faces]).astype(np.float64)
    single = points.ndim == 2
    points = points[None] if single else points
    if points.shape[1:] != (N_LANDMARKS, 3):
        raise ValueError(f"expected (478, 3) or (N, 478, 3) landmarks with x, y, z; got {points.shape}")
    return points, single


def squeeze(values: dict[str, np.ndarray], single: bool) -> dict[str, float] | dict[str, np.ndarray]:
    """Plain floats for one face, arrays for many."""
    return {k: float(v[0]) for k, v in values.items()} if single else values


@dataclass(frozen=True)
class Template:
    """Symmetric neutral frontal face: ``points`` (478, 3) with IOD 1 and the iris midpoint at 0;
    ``mirror[i]`` is the landmark that mirrors landmark i across the face's midline."""

    points: np.ndarray
    mirror: np.ndarray


@lru_cache(maxsize=1)
def load_template() -> Template:
    with np.load(TEMPLATE_PATH) as data:
        return Template(data["points"], data["mirror"])


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares ``target ~ s * R @ source + t`` (Umeyama), batched over the first axis.

    ``source`` (N, k, 3), ``target`` (k, 3) -> R (N, 3, 3), s (N,), t (N, 3); R is a proper rotation.
    """
    return weighted_similarity(source, np.broadcast_to(target, source.shape), np.ones(source.shape[:2]))


def weighted_similarity(source: np.ndarray, target: np.ndarray,
                        weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares ``target ~ s * R @ source + t`` per pair: source, target (N, k, 3), weights
    (N, k) >= 0 -> R (N, 3, 3), s (N,), t (N, 3); R is a proper rotation."""
    w = weights / weights.sum(axis=1, keepdims=True)
    mu_s, mu_t = np.einsum("nk,nki->ni", w, source), np.einsum("nk,nki->ni", w, target)
    a, b = source - mu_s[:, None], target - mu_t[:, None]
    u, sigma, vt = np.linalg.svd(np.einsum("nk,nkj,nki->nji", w, b, a))
    d = np.ones((len(source), 3))
    d[:, 2] = np.sign(np.linalg.det(u @ vt))
    rotation = u @ (d[:, :, None] * vt)
    scale = (sigma * d).sum(axis=1) / np.einsum("nk,nki,nki->n", w, a, a)
    shift = mu_t - scale[:, None] * np.einsum("nij,nj->ni", rotation, mu_s)
    return rotation, scale, shift


def rigid_fit(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity taking (N, 478, 3) photo landmarks onto the template on the rigid points."""
    return similarity_fit(points[:, RIGID], load_template().points[list(RIGID)])


def frontalize(faces: PointsLike) -> np.ndarray:
    """(N, 478, 3) landmarks in the frontal frame (module docstring), unit = the subject's IOD."""
    points, _ = as_points(faces)
    rotation, scale, shift = rigid_fit(points)
    front = scale[:, None, None] * np.einsum("nij,nkj->nki", rotation, points) + shift[:, None]
    iod = np.linalg.norm(front[:, IRIS_CENTERS[1]] - front[:, IRIS_CENTERS[0]], axis=1)
    return front / iod[:, None, None]


def head_pose(faces: PointsLike) -> dict[str, float] | dict[str, np.ndarray]:
    """Yaw, pitch, roll in degrees relative to the template (the mean bundled neutral portrait).

    yaw > 0: the nose points to the image right; pitch > 0: the nose points up (chin up);
    roll > 0: the face is turned clockwise in the image (the image-right eye is lower).
    Yaw and pitch are the direction of the face's forward axis, roll the image angle of its
    left-right axis.
    """
    points, single = as_points(faces)
    rotation = np.transpose(rigid_fit(points)[0], (0, 2, 1))  # template -> photo
    facing = -rotation[:, :, 2]  # where the template's -z axis (out of the face) points in the photo
    across = rotation[:, :, 0]
    yaw = np.degrees(np.arctan2(facing[:, 0], -facing[:, 2]))
    pitch = np.degrees(np.arctan2(-facing[:, 1], np.hypot(facing[:, 0], facing[:, 2])))
    roll = np.degrees(np.arctan2(across[:, 1], across[:, 0]))
    return squeeze({"yaw": yaw, "pitch": pitch, "roll": roll}, single)


def pose_change(source: PointsLike, edited: PointsLike) -> dict[str, float] | dict[str, np.ndarray]:
    """Edited minus source head pose, degrees (a preservation check: ideally all ~0)."""
    a, b = head_pose(source), head_pose(edited)
    return {k: b[k] - a[k] for k in a}


def _distance(front: np.ndarray, i: int, j: int, axes: slice = slice(None)) -> np.ndarray:
    return np.linalg.norm(front[:, i, axes] - front[:, j, axes], axis=-1)


def shape_measures(faces: PointsLike) -> dict[str, float] | dict[str, np.ndarray]:
    """Identity-shape ratios in the frontal frame (lengths in IOD units).

    nose_length: nasion (168) to nose tip (1) as seen from the front (x, y: how long the nose looks; an edit
    that stretches it in the image changes exactly this); nose_width: between the nostril-wing edges
    (129, 358) across the face; face_ratio: face width between the cheek sides (234, 454) over
    face height from the top of the forehead (10) to the chin (152); eye_size: mean lid gap
    (159-145, 386-374).
    """
    points, single = as_points(faces)
    front = frontalize(points)
    across, up = slice(0, 1), slice(1, 2)
    values = {
        "nose_length": _distance(front, NASION, NOSE_TIP, slice(0, 2)),
        "nose_width": _distance(front, *ALAR, across),
        "face_ratio": _distance(front, *CHEEK_SIDES, across) / _distance(front, FACE_TOP, CHIN, up),
        "eye_size": np.mean([_distance(front, u, lo, up) for u, lo in zip(UPPER_LID, LOWER_LID)], axis=0),
    }
    return squeeze(values, single)


def shape_change(source: PointsLike, edited: PointsLike) -> dict[str, float] | dict[str, np.ndarray]:
    """Relative change (edited - source) / source of each shape measure, e.g. ``nose_length_change``.

    An AU edit should leave nose length/width and face ratio unchanged (identity); eye size
    changes on purpose with AU5/AU6 (and AU4, AU9 a little).
    """
    a, b = shape_measures(source), shape_measures(edited)
    return {f"{k}_change": (b[k] - a[k]) / a[k] for k in a}


def background_rmse(source: np.ndarray, edited: np.ndarray, face_region: np.ndarray) -> float:
    """RMSE on the [0, 1] scale over the pixels outside the face region (MagicFace's background metric).

    ``source``/``edited``: aligned uint8 images of one shape; ``face_region``: (H, W) mask, > 0.5
    inside the face (e.g. ``complexface.faces.align.face_mask(aligned.landmarks, aligned.size)``).
    """
    if source.shape != edited.shape or face_region.shape != source.shape[:2]:
        raise ValueError(f"shapes differ: {source.shape}, {edited.shape}, mask {face_region.shape}")
    outside = (face_region <= 0.5).astype(np.uint8)
    count = int(outside.sum())
    if not count:
        raise ValueError("the face region covers the whole image: no background to compare")
    squared = cv2.norm(np.ascontiguousarray(source), np.ascontiguousarray(edited), cv2.NORM_L2SQR, mask=outside)
    channels = source.shape[2] if source.ndim == 3 else 1
    return float(np.sqrt(squared / (count * channels))) / 255.0


def mirror_points(points: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Left-right mirror image of (N, 478, 3) landmarks (x negated, sides swapped)."""
    flipped = points[:, mirror].copy()
    flipped[..., 0] *= -1
    return flipped


def build_template(points: np.ndarray, mirror: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Symmetric mean frontal shape of (N, 478, 3) faces and their mirror images (how the asset was made).

    Generalised Procrustes on the rigid points, then the mean is turned to the faces' mean
    orientation, made exactly symmetric, centred on the iris midpoint and scaled to IOD 1.
    """
    shapes = np.concatenate([points, mirror_points(points, mirror)])
    mean = shapes[0]
    for _ in range(iterations):
        rotation, scale, shift = similarity_fit(shapes[:, RIGID], mean[list(RIGID)])
        aligned = scale[:, None, None] * np.einsum("nij,nkj->nki", rotation, shapes) + shift[:, None]
        mean = aligned.mean(axis=0)
    template_to_photo = np.transpose(similarity_fit(shapes[:, RIGID], mean[list(RIGID)])[0], (0, 2, 1))
    u, _, vt = np.linalg.svd(template_to_photo.sum(axis=0))  # chordal mean rotation
    mean = mean @ (u @ vt).T
    mean = mean - mean[list(IRIS_CENTERS)].mean(axis=0)
    mean = (mean + mirror_points(mean[None], mirror)[0]) / 2
    return mean / np.linalg.norm(mean[IRIS_CENTERS[1]] - mean[IRIS_CENTERS[0]])

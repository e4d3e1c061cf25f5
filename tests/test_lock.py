"""The geometry lock on real demo faces: a deliberately flawed editor that lengthens the nose by 5%
is undone by locking the nose, an AU edit keeps its expression under a lock, and a lock with
nothing to do changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from complexface.au import AUEdit
from complexface.editors.lock import BROWS, EYES, LIPS, NOSE, GeometryLock, landmark_warp, warp_landmarks
from complexface.editors.warp import FaceFrame, WarpEditor
from complexface.faces import AlignedFace, FacePipeline, LandmarkDetector, demo_faceset
from complexface.faces.align import face_mask
from complexface.measure.geometry import shape_change
from complexface.settings import SettingError

FACES = ("001", "080")
NASION, NOSE_TIP = 168, 1
IN_NOSE = np.isin(np.arange(478), NOSE)
KEPT = list(LIPS + BROWS + EYES)
"""Landmarks a nose lock must leave where the edit put them."""


@pytest.fixture(scope="module")
def faces(pipeline: FacePipeline) -> dict[str, AlignedFace]:
    return {e.face_id: pipeline(e.path)[0].aligned for e in demo_faceset(only=FACES)}


@pytest.fixture(scope="module")
def detector() -> LandmarkDetector:
    return LandmarkDetector()


def lengthen_nose(face: AlignedFace, factor: float = 1.05) -> tuple[np.ndarray, np.ndarray]:
    """A flawed edit: the nose landmarks move ``factor`` x their distance from the nasion along the face's
    vertical, all others stay. Returns the edited crop and its exact landmarks."""
    xy = face.landmarks.xy
    down = FaceFrame.of(face.landmarks).ey
    targets = np.where(IN_NOSE[:, None], xy + (factor - 1) * ((xy - xy[NASION]) @ down)[:, None] * down, xy)
    warp = landmark_warp(xy, targets, IN_NOSE, face.size)
    edited = warp_landmarks(face.image, xy, targets, IN_NOSE)
    assert np.array_equal(edited, warp.apply(face.image))
    return edited, warp.move(xy)


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1)


def nose_length_change(detector: LandmarkDetector, source: np.ndarray, image: np.ndarray) -> float:
    """Relative nose length change MediaPipe sees from ``source`` to ``image``."""
    before, after = (detector.detect(im)[0].points for im in (source, image))
    return float(shape_change(before, after)["nose_length_change"])


def test_locking_the_nose_undoes_a_lengthened_nose(faces, detector):
    lock = GeometryLock(["nose"])
    for name, face in faces.items():
        xy = face.landmarks.xy
        edited, edited_xy = lengthen_nose(face)
        length = distance(edited_xy[[NOSE_TIP]], edited_xy[[NASION]]) / distance(xy[[NOSE_TIP]], xy[[NASION]])
        assert length[0] == pytest.approx(1.05, abs=0.005), name
        assert distance(edited_xy, xy)[KEPT].max() < 0.3, name

        warp = lock.warp(face, edited_xy)
        locked_xy = warp.move(edited_xy)
        assert distance(locked_xy, xy)[IN_NOSE].max() < 0.5, f"{name}: nose not back"
        assert distance(locked_xy, edited_xy)[KEPT].max() < 0.3, f"{name}: lips, brows or eyes moved"

        locked = lock.apply(face, edited, edited_xy)
        assert np.array_equal(locked, warp.apply(edited))
        outside = face_mask(face.landmarks, face.size) == 0
        assert np.array_equal(locked[outside], face.image[outside]), f"{name}: background changed"
        # MediaPipe's face prior under-reads the lengthening (about half of it), but sees it, and its undoing
        assert nose_length_change(detector, face.image, edited) > 0.015, name
        assert abs(nose_length_change(detector, face.image, locked)) < 0.01, name


def test_a_locked_nose_leaves_an_au_edit_alone(faces):
    editor, lock = WarpEditor(), GeometryLock(["nose"])
    brows = list(BROWS)
    for name, face in faces.items():
        au4 = AUEdit({"AU4": 3})
        edited_xy = face.landmarks.xy + editor.landmark_motion(face, au4)
        assert distance(edited_xy, face.landmarks.xy)[IN_NOSE].max() > 0.5, f"{name}: AU4 left the nose root still"
        # AU4 draws the inner brows down and together; the lateral tails barely move
        assert np.median(distance(edited_xy, face.landmarks.xy)[brows]) > 1.0, f"{name}: AU4 left the brows still"
        locked_xy = lock.warp(face, edited_xy).move(edited_xy)
        assert distance(locked_xy, face.landmarks.xy)[IN_NOSE].max() < 0.5, name
        assert distance(locked_xy, edited_xy)[brows].max() < 0.5, f"{name}: the lock moved the brows"


def test_nothing_to_lock_changes_nothing(faces):
    face = faces["001"]
    lock = GeometryLock(["nose", "face_outline", "eyes", "brows", "lips"])
    assert lock.apply(face, face.image, face.landmarks.points) is face.image
    assert lock.apply(face, face.image, face.landmarks.xy + 0.03) is face.image
    edited, edited_xy = lengthen_nose(face)
    assert GeometryLock(["nose"]).apply(face, edited, edited_xy, trusted=~IN_NOSE) is edited  # no constraint left
    assert GeometryLock([]).apply(face, edited, edited_xy) is edited


def test_unknown_region_is_a_setting_error():
    with pytest.raises(SettingError, match="unknown lock region.*'chin'.*valid regions: nose, face_outline"):
        GeometryLock(["nose", "chin"])

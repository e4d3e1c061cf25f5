"""The warp editor's calibrated motion: at intensity 3 every AU moves its landmarks by three FACS steps of
published facial motion (``complexface.facs_motion``) on every bundled face, and the rendered pixels carry it."""

from __future__ import annotations

import numpy as np
import pytest

from complexface.au import EDITABLE, AUEdit
from complexface.editors.warp import WarpEditor
from complexface.editors.warp.geometry import MENTON, Geometry
from complexface.faces import AlignedFace
from complexface.faces.tracking import LandmarkTracker
from complexface.measure.au_change import change
from complexface.measure.metrics import motion_error

LEVEL = 3.0
NECK_ROOM = 0.33
"""IOD of neck the crop must show below the chin for a full jaw drop (the chin folds over it); three bundled
crops show 0.29-0.32 (039 reaches 0.79 of the motion, 047 and 050 all of it)."""


@pytest.fixture(scope="module")
def faces(aligned_faces: dict[str, AlignedFace]) -> dict[str, AlignedFace]:
    return aligned_faces


@pytest.fixture(scope="module")
def editor() -> WarpEditor:
    return WarpEditor(cache_faces=1)


@pytest.fixture(scope="module")
def reached(faces, editor) -> dict[tuple[str, str], float]:
    """(face, AU) -> measured change per requested unit of the editor's own landmark motion at +3."""
    out = {}
    for name, face in faces.items():
        edits = [AUEdit({au: LEVEL}) for au in EDITABLE]
        moved = []
        for e in edits:
            points = face.landmarks.points.copy()
            points[:, :2] += editor.landmark_motion(face, e)
            moved.append(points)
        for au, points in zip(EDITABLE, moved, strict=True):
            out[name, au] = float(change(face.landmarks.points, points, {au: LEVEL})[au]) / LEVEL
    return out


def neck_room(face: AlignedFace) -> float:
    g = Geometry(face.image, face.landmarks, 4)
    return float(g.V.max() - g.uv[MENTON, 1])


@pytest.mark.parametrize("au", EDITABLE)
def test_every_au_moves_its_landmarks_by_the_published_motion_on_every_face(faces, reached, au):
    short = {name for name, face in faces.items() if au == "AU26" and neck_room(face) < NECK_ROOM}
    off = {name: round(reached[name, au], 2) for name in faces
           if name not in short and abs(reached[name, au] - 1) > 0.15}
    assert not off, f"{au} per requested unit off the published motion by > 15%: {off}"
    assert len(short) <= 3 and all(reached[name, au] > 0.75 for name in short), {n: reached[n, au] for n in short}


def test_au4_reaches_its_intensity_on_the_lowest_browed_face(faces, reached):
    """The brow-to-lid gap is smallest on this face; the lid skin folds instead of the brow stopping."""
    def gap(face: AlignedFace) -> float:
        g = Geometry(face.image, face.landmarks, 4)
        return float(np.mean(g.uv[[159, 386], 1] - g.uv[[105, 334], 1]))

    lowest = min(faces, key=lambda name: gap(faces[name]))
    assert reached[lowest, "AU4"] >= 0.85, (lowest, reached[lowest, "AU4"])


def test_calibration_is_what_brings_the_designs_to_the_published_motion(faces):
    """The drawn AU9 design overshoots the published nostril-wing lift by about half; calibrated, it meets it."""
    e = AUEdit({"AU9": LEVEL})
    for name in ("001", "039", "080"):
        reads = []
        for ed in (WarpEditor(calibrate=False), WarpEditor()):
            points = faces[name].landmarks.points.copy()
            points[:, :2] += ed.landmark_motion(faces[name], e)
            reads.append(float(change(faces[name].landmarks.points, points, e)["AU9"]) / LEVEL)
        assert reads[0] > 1.3 and abs(reads[1] - 1) < 0.05, (name, reads)


@pytest.mark.parametrize("au", EDITABLE)
def test_rendered_pixels_carry_the_calibrated_motion(faces, editor, au):
    """Landmarks tracked on the rendered crops (not the editor's word) read the calibrated motion: the median
    over the 20 faces within 20% (the tracker under-reads small lid motions a little), the tracked landmark
    motion within 1 px of the editor's on the median face and 2 px on every face without glasses."""
    tracker, e = LandmarkTracker(), AUEdit({au: LEVEL})
    reads, errors = [], {}
    for name, face in faces.items():
        image = editor.edit(face, [e])[0]
        tracked = tracker.track(face.image, image, face.landmarks)
        reads.append(float(change(face.landmarks.points, tracked.landmarks.points, e)[au]) / LEVEL)
        errors[name] = motion_error(tracked.landmarks.xy - face.landmarks.xy, editor.landmark_motion(face, e))
    assert 0.8 <= np.median(reads) <= 1.2, (au, np.round(reads, 2))
    assert np.median(list(errors.values())) <= 1.0
    # a glasses frame stays put over the moving lids and brows it covers (faces 050, 062: up to 2.4 px on AU5)
    limit = {name: 3.0 if editor.prepare(face).glasses is not None else 2.0 for name, face in faces.items()}
    assert all(errors[n] <= limit[n] for n in faces), {k: round(v, 2) for k, v in errors.items() if v > limit[k]}

"""The geometric warp editor on real demo faces (real MediaPipe landmarks).

Directions are measured in each face's own frame (up = perpendicular to the eye line, outward =
away from the midline), in crop pixels at 512.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from complexface.au import EDITABLE, AUEdit
from complexface.editors.displacement import cell_jacobian
from complexface.editors.warp import WarpEditor
from complexface.editors.warp.geometry import BROW_LOWER, LOWER_LID, UPPER_LID, FaceFrame
from complexface.faces import AlignedFace, LandmarkDetector
from complexface.faces.align import face_mask
from complexface.faces.landmarks import LOWER_INNER_LIP, UPPER_INNER_LIP
from tests.warp_helpers import edit

FACES = ("001", "047", "080", "100", "059")
"""Neutral closed-mouth faces of different groups, plus a turned head (059)."""
OPEN_MOUTH = "014"

# (image-left ids, image-right ids): the landmarks an AU owns
INNER_BROW = ((107, 55, 66), (336, 285, 296))
OUTER_BROW = ((70, 63, 46, 53), (300, 293, 276, 283))
UPPER_LID_MID = ((159, 158, 160), (386, 385, 387))
LOWER_LID_MID = ((145, 144, 153), (374, 373, 380))
CHEEK = ((117, 118, 101), (346, 347, 330))
NOSE_WING = ((64, 48, 129), (294, 278, 358))
CORNER = ((61,), (291,))
CENTRAL = ((), ())

# AU -> [(landmarks, axis, minimum px at intensity 3)]; axis "up", "down", "out" or "in"
OWNED = {
    "AU1": [(INNER_BROW, "up", 4.0)],
    "AU2": [(OUTER_BROW, "up", 4.0)],
    "AU4": [(INNER_BROW, "down", 4.0), (INNER_BROW, "in", 2.0), (UPPER_LID_MID, "down", 1.0)],
    "AU5": [(UPPER_LID_MID, "up", 3.0)],
    "AU6": [(LOWER_LID_MID, "up", 2.0), (CHEEK, "up", 4.0)],
    "AU9": [(NOSE_WING, "up", 4.0), (INNER_BROW, "down", 1.0)],
    "AU12": [(CORNER, "up", 4.0), (CORNER, "out", 3.0)],
    "AU15": [(CORNER, "down", 4.0)],
    "AU17": [(((18, 200), ()), "up", 4.0), (((17, 14), ()), "up", 3.0)],
    "AU20": [(CORNER, "out", 5.0)],
    "AU25": [(((14, 87, 317), ()), "down", 4.0)],
    "AU26": [(((14, 17), ()), "down", 12.0), (((152,), ()), "down", 6.0)],
}

BROWS = [i for side in INNER_BROW + OUTER_BROW for i in side] + list(BROW_LOWER[0] + BROW_LOWER[1])
LIDS = list(UPPER_LID[0] + UPPER_LID[1] + LOWER_LID[0] + LOWER_LID[1])
LOWER_LIDS = list(LOWER_LID[0][1:-1] + LOWER_LID[1][1:-1])
IRIS_CENTERS = [468, 473]
LIPS = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
CHIN = [152, 175, 199]
FOREHEAD = [10, 151, 9]
EYES_AND_BROWS = BROWS + LIDS + IRIS_CENTERS + FOREHEAD
# AU -> landmarks it must leave still (< 0.5 px)
UNRELATED = {
    "AU1": LIPS + CHIN + LOWER_LIDS + IRIS_CENTERS,
    "AU2": LIPS + CHIN + LOWER_LIDS + IRIS_CENTERS,
    "AU4": LIPS + CHIN + LOWER_LIDS,
    "AU5": LIPS + CHIN + BROWS,
    "AU6": LIPS + CHIN + BROWS,
    "AU9": CHIN + LOWER_LIDS + IRIS_CENTERS,
    **{au: EYES_AND_BROWS for au in ("AU12", "AU15", "AU17", "AU20", "AU25", "AU26")},
}


@pytest.fixture(scope="module")
def faces(aligned_faces: dict[str, AlignedFace]) -> dict[str, AlignedFace]:
    return {k: aligned_faces[k] for k in [*FACES, OPEN_MOUTH]}


@pytest.fixture(scope="module")
def editor() -> WarpEditor:
    return WarpEditor(cache_faces=8)


def axes(face: AlignedFace, side: int) -> dict[str, np.ndarray]:
    """Unit vectors of the face frame for one half (side 0: image-left, 1: image-right)."""
    frame = FaceFrame.of(face.landmarks)
    out = frame.ex if side else -frame.ex
    return {"up": -frame.ey, "down": frame.ey, "out": out, "in": -out}


def along(motion: np.ndarray, face: AlignedFace, groups: tuple, axis: str) -> list[float]:
    """Mean motion of each half's landmark group along ``axis``, in pixels."""
    return [float(motion[list(ids)].mean(axis=0) @ axes(face, side)[axis]) for side, ids in enumerate(groups) if ids]


# ---------------------------------------------------------------- the AU motions


@pytest.mark.parametrize("au", EDITABLE)
def test_each_au_moves_its_landmarks_the_facs_way(faces, editor, au):
    for name in FACES:
        face = faces[name]
        motion = editor.landmark_motion(face, edit(**{au: 3}))
        for groups, axis, minimum in OWNED[au]:
            moved = along(motion, face, groups, axis)
            assert min(moved) >= minimum, f"{au} on {name}: {groups} moved {moved} px {axis}, want >= {minimum}"


@pytest.mark.parametrize("au", EDITABLE)
def test_each_au_leaves_unrelated_landmarks_still(faces, editor, au):
    for name in FACES:
        motion = np.linalg.norm(editor.landmark_motion(faces[name], edit(**{au: 3})), axis=1)
        worst = int(np.argmax(motion[UNRELATED[au]]))
        assert motion[UNRELATED[au]].max() < 0.5, f"{au} on {name} moved landmark {UNRELATED[au][worst]}"


def test_lips_part_and_jaw_drop_open_the_inner_lips(faces, editor):
    for name in FACES:
        face = faces[name]
        down = axes(face, 0)["down"]
        for au, minimum in (("AU25", 6.0), ("AU26", 12.0)):
            motion = editor.landmark_motion(face, edit(**{au: 3}))
            gap = (motion[list(LOWER_INNER_LIP[1:-1])] - motion[list(UPPER_INNER_LIP[1:-1])]) @ down
            assert gap[len(gap) // 2] >= minimum, f"{au} on {name} opened the lips by {gap} px"


@pytest.mark.parametrize(("au", "ids", "axis"), [
    ("AU12", CORNER, "up"), ("AU1", INNER_BROW, "up"), ("AU4", INNER_BROW, "down"),
    ("AU26", ((17, 14), ()), "down"),
])
def test_redetected_landmarks_move_the_facs_way(faces, editor, au, ids, axis):
    """MediaPipe run again on the edited crop sees the motion (baseline: the unedited crop)."""
    detector = LandmarkDetector()
    for name in ("001", "100"):
        face = faces[name]
        before = detector.detect(face.image)[0].xy
        after = detector.detect(editor.edit(face, [edit(**{au: 3})])[0])[0].xy
        moved = along(after - before, face, ids, axis)
        assert min(moved) >= 2.0, f"{au} on {name}: re-detected {ids} moved {moved} px {axis}"


# ---------------------------------------------------------------- what stays still


@pytest.mark.parametrize("au", EDITABLE)
def test_pixels_outside_the_face_region_are_unchanged(faces, editor, au):
    """The face region the background metric excludes is the one the editor's motion stays inside."""
    for name in FACES:
        face = faces[name]
        outside = face_mask(face.landmarks, face.size) == 0
        for value in (5, -5):
            edited = editor.edit(face, [edit(**{au: value})])[0]
            assert np.array_equal(edited[outside], face.image[outside]), f"{au}={value} on {name}"


def test_zero_edit_is_identity(faces, editor):
    face = faces["001"]
    for zero in (AUEdit({}), edit(AU4=0), edit(AU6=0, AU12=0)):
        (out,) = editor.edit(face, [zero])
        assert out.dtype == np.uint8 and out.shape == face.image.shape
        assert np.array_equal(out, face.image)
        assert not editor.landmark_motion(face, zero).any()


def test_edit_returns_one_crop_per_edit(faces, editor):
    face = faces["047"]
    outs = editor.edit(face, [edit(AU12=2), AUEdit({}), edit(AU4=-1)])
    assert len(outs) == 3 and all(o.shape == face.image.shape and o.dtype == np.uint8 for o in outs)
    assert not np.array_equal(outs[0], face.image) and np.array_equal(outs[1], face.image)


# ---------------------------------------------------------------- linearity


def test_negative_intensity_moves_the_other_way(faces, editor):
    for au in EDITABLE:
        for name in FACES:
            face = faces[name]
            plus = editor.landmark_motion(face, edit(**{au: 2}))
            minus = editor.landmark_motion(face, edit(**{au: -2}))
            moving = np.linalg.norm(plus, axis=1) > 1.0
            assert moving.any()
            cosine = np.sum(plus[moving] * minus[moving], axis=1) / (
                np.linalg.norm(plus[moving], axis=1) * np.linalg.norm(minus[moving], axis=1) + 1e-9)
            assert np.median(cosine) < -0.95, f"{au} on {name}"


def test_combinations_add(faces, editor):
    for name in FACES:
        face = faces[name]
        both = editor.landmark_motion(face, edit(AU6=3, AU12=3))
        parts = editor.landmark_motion(face, edit(AU6=3)) + editor.landmark_motion(face, edit(AU12=3))
        assert np.abs(both - parts).max() < 0.5, name
        assert np.abs(both).max() > 5


def test_au4_lowers_the_inner_brow_most(faces, editor):
    """A scowl's oblique brow: the inner brow comes down at least twice as far as the lateral tail."""
    for name in FACES:
        face = faces[name]
        motion = editor.landmark_motion(face, edit(AU4=3))
        inner, outer = along(motion, face, INNER_BROW, "down"), along(motion, face, OUTER_BROW, "down")
        assert min(i - 2 * o for i, o in zip(inner, outer)) > 0, (name, inner, outer)


def test_au1_with_au4_keeps_the_lateral_brows_down(faces, editor):
    """1+4 (sadness): on top of the sum of the two, the lateral brows go down and the inner brows keep their motion."""
    for name in FACES:
        face = faces[name]
        both = editor.landmark_motion(face, edit(AU1=3, AU4=3))
        extra = both - editor.landmark_motion(face, edit(AU1=3)) - editor.landmark_motion(face, edit(AU4=3))
        assert min(along(extra, face, OUTER_BROW, "down")) >= 2.0, name
        assert max(abs(v) for v in along(extra, face, INNER_BROW, "down")) < 1.5, name


# ---------------------------------------------------------------- one-to-one


def moved_uv(face: AlignedFace, editor: WarpEditor, au_edit: AUEdit) -> np.ndarray:
    frame = FaceFrame.of(face.landmarks)
    return frame.to_uv(face.landmarks.xy + editor.landmark_motion(face, au_edit)) * frame.unit


EXTREMES = [edit(**{au: v}) for au in EDITABLE for v in (5, -5)] + [
    edit(AU4=5, AU5=5), edit(AU1=5, AU4=5), edit(AU26=5, AU17=5), edit(AU4=10), edit(AU26=-5, AU17=5),
    edit(AU6=5, AU12=5, AU25=5), edit(AU1=-5, AU2=-5, AU4=5, AU9=5), edit(AU12=8, AU6=8), edit(AU26=8, AU17=5),
]


@pytest.mark.parametrize("au_edit", EXTREMES, ids=str)
def test_warp_stays_one_to_one(faces, editor, au_edit):
    for name in FACES:
        work = editor.prepare(faces[name])
        motion = editor.motion(work, au_edit)
        (r0, r1, c0, c1), det = motion.window, cell_jacobian(motion.disp, editor.grid_step)
        floor = work.floor[r0:r1 - 1, c0:c1 - 1]  # min_jacobian; less only on the neck a jaw drop folds
        assert (det >= floor - 1e-3).all() and det.min() > 0, name
        assert (det[floor >= editor.min_jacobian] >= editor.min_jacobian - 1e-3).all(), name


@pytest.mark.parametrize("au_edit", [edit(AU26=5), edit(AU26=10), edit(AU25=5, AU26=5), edit(AU6=5, AU12=5, AU25=5)],
                         ids=str)
def test_the_inverse_map_meets_its_tolerance_where_the_mouth_opens(faces, editor, au_edit):
    """y + b + disp(y + b) = y at every grid node within 0.05 px, read with exact bilinear sampling (OpenCV's
    remap rounds positions to 1/32 of a cell, which left 0.4-1.1 px on hundreds of nodes of a jaw drop)."""
    from complexface.editors.displacement import invert, sample_exact

    for name in FACES:
        motion = editor.motion(editor.prepare(faces[name]), au_edit)
        back = invert(motion.disp, editor.grid_step)
        gy, gx = np.indices(back.shape[:2], dtype=np.float32)
        moved = sample_exact(motion.disp, gx + back[..., 0] / editor.grid_step, gy + back[..., 1] / editor.grid_step)
        assert np.linalg.norm(back + moved, axis=-1).max() <= 0.06, name


def test_extreme_edits_render(faces, editor):
    for name in FACES:
        face = faces[name]
        for out in editor.edit(face, EXTREMES[-6:]):
            assert out.dtype == np.uint8 and out.shape == face.image.shape


@pytest.mark.parametrize("au_edit", [edit(AU4=5), edit(AU4=10), edit(AU4=5, AU5=5), edit(AU1=-5, AU4=5),
                                     edit(AU9=5, AU4=5)], ids=str)
def test_brows_stop_above_the_upper_lid(faces, editor, au_edit):
    for name in FACES:
        face = faces[name]
        uv = moved_uv(face, editor, au_edit)
        for brow, lid in zip(BROW_LOWER, UPPER_LID):
            lid_u, lid_v = uv[list(lid), 0], uv[list(lid), 1]
            order = np.argsort(lid_u)
            under = np.interp(uv[list(brow), 0], lid_u[order], lid_v[order])
            assert (under - uv[list(brow), 1]).min() > 2.0, f"{au_edit} on {name}: brow within 2 px of the lid"


@pytest.mark.parametrize("au_edit", [edit(AU26=-5), edit(AU25=-5), edit(AU17=5), edit(AU26=5, AU17=5),
                                     edit(AU26=-5, AU17=5), edit(AU15=5, AU20=-5)], ids=str)
def test_inner_lips_do_not_cross(faces, editor, au_edit):
    for name in (*FACES, OPEN_MOUTH):
        uv = moved_uv(faces[name], editor, au_edit)
        upper, lower = uv[list(UPPER_INNER_LIP)], uv[list(LOWER_INNER_LIP[1:-1])]
        order = np.argsort(upper[:, 0])
        gap = lower[:, 1] - np.interp(lower[:, 0], upper[order, 0], upper[order, 1])
        assert gap.min() > -0.5, f"{au_edit} on {name}: lips crossed by {-gap.min():.1f} px"


# ---------------------------------------------------------------- mouth interior


def polygon_mask(face: AlignedFace, points: np.ndarray) -> np.ndarray:
    mask = np.zeros(face.image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def test_opened_mouth_shows_a_dark_interior(faces, editor):
    for name in FACES:
        face = faces[name]
        au_edit = edit(AU26=3)
        out = editor.edit(face, [au_edit])[0]
        moved = face.landmarks.xy + editor.landmark_motion(face, au_edit)
        inner = polygon_mask(face, moved[list(UPPER_INNER_LIP + LOWER_INNER_LIP[-2:0:-1])])
        cavity = cv2.erode(inner.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        lips = polygon_mask(face, moved[LIPS]) & ~inner
        luma = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(float)
        assert cavity.sum() > 200, name
        assert np.median(luma[cavity]) < 0.5 * np.median(luma[lips]), name


def test_an_already_open_mouth_keeps_its_own_interior(faces, editor):
    """014 smiles with his upper teeth showing: in the middle of the mouth they stay where they
    were, the new gap opens below them."""
    face = faces[OPEN_MOUTH]
    out = editor.edit(face, [edit(AU26=3)])[0]
    xy = face.landmarks.xy
    upper, lower = xy[list(UPPER_INNER_LIP[4:-4])], xy[list(LOWER_INNER_LIP[4:-4])]
    teeth = polygon_mask(face, np.concatenate([upper, (0.7 * upper + 0.3 * lower)[::-1]]))
    assert teeth.sum() > 40
    soft = [cv2.GaussianBlur(im, (0, 0), 1.5).astype(int) for im in (out, face.image)]
    assert np.median(np.abs(soft[0] - soft[1]).max(axis=2)[teeth]) < 12


@pytest.mark.parametrize("au", ["AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU15", "AU20"])
def test_one_sided_edits_move_one_side_only(faces, editor, au):
    """``AU12L=3`` moves the person's left half (the image-right half of a frontal crop) as ``AU12=3`` does there,
    and leaves the other half still, in the field and in the pixels."""
    for name in ("001", "047", "080"):
        face = faces[name]
        frame = FaceFrame.of(face.landmarks)
        u = frame.to_uv(face.landmarks.xy)[:, 0] - frame.to_uv(face.landmarks.xy[168])[0]
        both = np.linalg.norm(editor.landmark_motion(face, edit(**{au: 3})), axis=1)
        for side, own, other in (("L", u > 0.1, u < -0.1), ("R", u < -0.1, u > 0.1)):
            one = np.linalg.norm(editor.landmark_motion(face, edit(**{au + side: 3})), axis=1)
            assert one[other].max() < 0.05, (name, side)
            np.testing.assert_allclose(one[own], both[own], atol=0.05)
            out = editor.edit(face, [edit(**{au + side: 3})])[0]
            ys, xs = np.indices(face.image.shape[:2])
            pixel_u = frame.to_uv(np.stack([xs, ys], -1).astype(float))[..., 0] - frame.to_uv(face.landmarks.xy[168])[0]
            half = pixel_u < -0.12 if side == "L" else pixel_u > 0.12
            assert np.abs(out.astype(int) - face.image.astype(int))[half].max() <= 2, (name, side)

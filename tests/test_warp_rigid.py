"""Rigid things stay rigid in the warp editor: glasses frames (found on the crop, kept out of the warp) and the
eyeball (the iris is never stretched; an opening lid shows sclera, not stretched lid skin)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from complexface.au import EDITABLE, AUEdit
from complexface.editors.warp import WarpEditor
from complexface.editors.warp.eyes import BAND, SOFT
from complexface.editors.warp.geometry import UPPER_LID, FaceFrame
from complexface.editors.warp.glasses import Glasses
from complexface.faces import AlignedFace
from complexface.faces.align import face_mask
from complexface.faces.landmarks import IRIS_CENTERS
from tests.warp_helpers import edit, luma

WEARS_GLASSES = ("050", "062", "067")
"""The bundled faces with glasses: thick dark rectangular, thin metal half-rim, thick blue round."""
EYES = ("047", "068", "080", "100")
"""Faces whose eyes show sclera either side of the iris."""
CLEAR = BAND + SOFT + 4
"""How far (px) below the upper lid's landmarks the source eyeball is kept as it was when the lid opens (the
lashes reach up to 4 px below them; a band under the old margin is drawn anew)."""


@pytest.fixture(scope="module")
def faces(aligned_faces: dict[str, AlignedFace]) -> dict[str, AlignedFace]:
    return aligned_faces


@pytest.fixture(scope="module")
def editor() -> WarpEditor:
    return WarpEditor(cache_faces=8)


# ---------------------------------------------------------------- glasses


BARS = {"top": -0.13, "bottom": 0.27}
"""Face-frame heights (v) of the synthetic frame's horizontal bars; the lenses span |u| 0.1 .. 0.8."""
INNER, OUTER = 0.1, 0.8
FRAME_COLOR = (28, 26, 30)


def with_glasses(face: AlignedFace) -> AlignedFace:
    """The face wearing a synthetic frame: two rectangular rims of dark anti-aliased bars, a bridge and arms."""
    frame = FaceFrame.of(face.landmarks)
    image = face.image.copy()
    width = max(3, round(0.03 * frame.unit))

    def line(a: tuple[float, float], b: tuple[float, float]) -> None:
        ends = [tuple(int(c) for c in np.round(frame.to_xy(np.array(p)) * 16)) for p in (a, b)]
        cv2.line(image, ends[0], ends[1], FRAME_COLOR, width, cv2.LINE_AA, shift=4)

    for s in (-1, 1):
        corners = [(s * INNER, BARS["top"]), (s * OUTER, BARS["top"]), (s * OUTER, BARS["bottom"]),
                   (s * INNER, BARS["bottom"])]
        for a, b in zip(corners, corners[1:] + corners[:1]):
            line(a, b)
        line((s * OUTER, BARS["top"] + 0.03), (s * 1.3, BARS["top"] + 0.02))  # arm
    line((-INNER, -0.1), (INNER, -0.1))  # bridge
    return AlignedFace(image, face.landmarks, face.matrix)


def bar_line(image: np.ndarray, face: AlignedFace, side: int, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Columns and centre rows (px) of a horizontal bar of the synthetic frame: per column, halfway between its
    upper and lower edge, each where the colour crosses halfway from the bar's to the skin's on that side
    (anti-aliasing puts the crossing between pixels)."""
    frame = FaceFrame.of(face.landmarks)
    ends = (frame.to_xy(np.array([side * (INNER + 0.08), v])), frame.to_xy(np.array([side * (OUTER - 0.08), v])))
    a, b = sorted(ends, key=lambda p: p[0])
    xs = np.arange(int(a[0]), int(b[0]) + 1)
    ys = []
    for x in xs:
        y0 = int(np.interp(x, [a[0], b[0]], [a[1], b[1]]))
        rows = np.arange(y0 - 24, y0 + 25)
        off = np.linalg.norm(image[rows, x].astype(float) - FRAME_COLOR, axis=1)  # 0 on the bar
        best = 10 + int(np.argmin(off[10:-10]))
        edges = []
        for step in (-1, 1):
            k = best
            while abs(k - best) < 5 and off[k + step] < 0.5 * off[k + 5 * step]:  # in the bar, by the skin 5 px on
                k += step
            half = 0.5 * off[k + 5 * step]
            edges.append(rows[k] + step * np.clip((half - off[k]) / max(off[k + step] - off[k], 1e-6), 0, 1))
        ys.append(float(np.mean(edges)))
    return xs, np.array(ys)


def straightness(xs: np.ndarray, ys: np.ndarray) -> float:
    """Largest distance (px) of a centre line from its best-fit straight line."""
    return float(np.abs(ys - np.polyval(np.polyfit(xs, ys, 1), xs)).max())


@pytest.mark.parametrize("au_edit", [edit(AU1=4, AU2=4), edit(AU4=4), edit(AU6=4, AU12=4)], ids=str)
def test_a_synthetic_frame_is_found_and_stays_straight(faces, editor, au_edit):
    """Straight dark bars drawn across the face are detected as a frame and stay straight, where they were, under
    brow, frown and smile edits; the same edits without the rigid frame bend them (so the check can fail)."""
    bending = WarpEditor(cache_faces=2, glasses=False)
    for name in ("001", "080"):
        face = with_glasses(faces[name])
        assert Glasses.detect(face) is not None, name
        (kept,) = editor.edit(face, [au_edit])
        (bent,) = bending.edit(face, [au_edit])
        worst = 0.0
        for side in (-1, 1):
            for bar, v in BARS.items():
                xs, before = bar_line(face.image, face, side, v)
                after, bent_line = bar_line(kept, face, side, v)[1], bar_line(bent, face, side, v)[1]
                assert straightness(xs, before) < 0.4, (name, side, bar)  # the drawn bar, as measured
                assert straightness(xs, after) < 0.5, (name, side, bar, straightness(xs, after))
                assert np.abs(after - before).max() < 0.5, (name, side, bar)
                worst = max(worst, straightness(xs, bent_line))
        assert worst > 1.0, (name, "the plain warp would not have bent the frame")


def test_the_frame_keeps_its_source_pixels(faces, editor):
    """Where the mask holds the frame fully, an edit leaves the source pixels; the skin under it moves."""
    face = with_glasses(faces["047"])
    glasses = editor.prepare(face).glasses
    assert glasses is not None
    y0, y1, x0, x1 = glasses.box
    core = np.zeros(face.image.shape[:2], bool)
    core[y0:y1, x0:x1] = glasses.mask >= 1
    (out,) = editor.edit(face, [edit(AU1=4, AU2=4)])
    assert np.array_equal(out[core], face.image[core])
    assert not np.array_equal(out, face.image)


def test_bundled_faces_without_glasses_are_not_taken_for_glasses(faces):
    found = {name for name, face in faces.items() if Glasses.detect(face) is not None}
    assert found == set(WEARS_GLASSES)


def test_glasses_can_be_turned_off(faces):
    editor = WarpEditor(cache_faces=1, glasses=False)
    assert editor.prepare(faces["050"]).glasses is None


# ---------------------------------------------------------------- the eyeball


def iris(face: AlignedFace, side: int) -> tuple[np.ndarray, float]:
    centre = face.landmarks.xy[IRIS_CENTERS[side]]
    ring = face.landmarks.xy[IRIS_CENTERS[side] + 1:IRIS_CENTERS[side] + 5]
    return centre, float(np.linalg.norm(ring - centre, axis=1).mean())


def lid_at(xy: np.ndarray, side: int, x: np.ndarray) -> np.ndarray:
    """The upper lid's height at columns ``x`` (landmark polyline)."""
    pts = xy[list(UPPER_LID[side])]
    order = np.argsort(pts[:, 0])
    return np.interp(x, pts[order, 0], pts[order, 1])


def test_the_iris_keeps_its_shape_when_the_lid_opens(faces, editor):
    """Under AU5=4 the iris pixels the source showed stay as they were (a plain warp stretches them upward)."""
    stretching = WarpEditor(cache_faces=1, rigid_eyes=False)
    au_edit = edit(AU5=4)
    for name in EYES:
        face = faces[name]
        (out,) = editor.edit(face, [au_edit])
        (stretched,) = stretching.edit(face, [au_edit])
        ys, xs = np.indices(face.image.shape[:2])
        for side in (0, 1):
            centre, r = iris(face, side)
            disc = np.hypot(xs - centre[0], ys - centre[1]) < r - 1
            shown = disc & (ys > lid_at(face.landmarks.xy, side, xs) + CLEAR)  # clear of the lid, its lashes, the band
            shown &= ys < centre[1] + 0.5 * r  # and of the lower lid
            assert shown.sum() > 60, (name, side)
            kept = np.abs(luma(out)[shown] - luma(face.image)[shown]).mean()
            moved = np.abs(luma(stretched)[shown] - luma(face.image)[shown]).mean()
            assert kept < 1.0, (name, side, kept)
            assert moved > 4.0, (name, side, moved)


def test_an_opening_lid_shows_sclera_above_the_iris(faces, editor):
    """The eyeball uncovered by AU5=4 beside the top of the iris is bright like the visible sclera, not the
    lid skin and lashes that were there."""
    au_edit = edit(AU5=4)
    for name in EYES:
        face = faces[name]
        (out,) = editor.edit(face, [au_edit])
        moved = face.landmarks.xy + editor.landmark_motion(face, au_edit)
        ys, xs = np.indices(face.image.shape[:2])
        gray, before = luma(out), luma(face.image)
        for side in (0, 1):
            centre, r = iris(face, side)
            old, new = lid_at(face.landmarks.xy, side, xs), lid_at(moved, side, xs)
            # between the lid's old and new margin, below the lashes it carries up, beside the iris
            uncovered = (ys > new + 4) & (ys < old + 1) & (np.abs(xs - centre[0]) < 1.6 * r)
            uncovered &= np.hypot(xs - centre[0], ys - centre[1]) > r + 2
            assert uncovered.sum() > 10, (name, side)
            sclera = (ys > old + 3) & (ys < centre[1]) & (np.abs(xs - centre[0]) > r + 2)
            sclera &= np.abs(xs - centre[0]) < 2 * r
            white = np.percentile(before[sclera], 75)
            now, was = np.median(gray[uncovered]), np.median(before[uncovered])
            assert now > was + 15, (name, side, now, was)
            assert now > 0.6 * white, (name, side, now, white)


@pytest.mark.parametrize("au", ["AU9", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26"])
def test_edits_that_leave_the_lids_leave_the_eyes_to_the_warp(faces, editor, au):
    """The rigid eyeball only acts where lids move: other edits render exactly as without it."""
    plain = WarpEditor(cache_faces=1, rigid_eyes=False)
    face = faces["047"]
    assert np.array_equal(editor.edit(face, [edit(**{au: 3})])[0], plain.edit(face, [edit(**{au: 3})])[0])


# ---------------------------------------------------------------- what stays still


def test_zero_edit_is_identity_with_glasses_and_eyes(faces, editor):
    for name in ("050", "067"):
        face = faces[name]
        for zero in (AUEdit({}), edit(AU5=0), edit(AU1=0, AU4=0)):
            (out,) = editor.edit(face, [zero])
            assert np.array_equal(out, face.image), name


@pytest.mark.parametrize("au", EDITABLE)
def test_pixels_outside_the_face_stay_with_glasses(faces, editor, au):
    for name in WEARS_GLASSES:
        face = faces[name]
        outside = face_mask(face.landmarks, face.size) == 0
        for value in (5, -5):
            (out,) = editor.edit(face, [edit(**{au: value})])
            assert np.array_equal(out[outside], face.image[outside]), f"{au}={value} on {name}"

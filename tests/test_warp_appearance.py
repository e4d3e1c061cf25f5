"""The warp editor's appearance: soft luminance ratio maps of the AUs (creases, bulges) on real demo faces.

Shading is measured against the geometry-only render (``appearance=False``, the same warp), so the ratio of
the two renders is the appearance alone, moved by the warp.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from complexface.au import AUEdit
from complexface.editors.warp import FaceFrame, WarpEditor
from complexface.editors.warp.appearance import DESIGNS, HIGHLIGHT, SHADOW, TRIM
from complexface.editors.warp.geometry import CHEEK, LOWER_LID, NOSE_WING
from complexface.faces import AlignedFace
from complexface.faces.align import face_mask
from tests.warp_helpers import edit, luma

FACES = ("001", "047", "080", "100", "059")
"""Neutral faces of different groups, plus a turned head (059)."""


@pytest.fixture(scope="module")
def faces(aligned_faces: dict[str, AlignedFace]) -> dict[str, AlignedFace]:
    return {k: aligned_faces[k] for k in list(FACES)}


@pytest.fixture(scope="module")
def editor() -> WarpEditor:
    return WarpEditor(cache_faces=8)


@pytest.fixture(scope="module")
def geometry_only() -> WarpEditor:
    return WarpEditor(cache_faces=8, appearance=False)


def ratio(editor: WarpEditor, geometry_only: WarpEditor, face: AlignedFace, au_edit: AUEdit) -> np.ndarray:
    """Luminance of the render over that of the geometry-only render."""
    return (luma(editor.edit(face, [au_edit])[0]) + 1) / (luma(geometry_only.edit(face, [au_edit])[0]) + 1)


def disk(shape: tuple[int, ...], center: np.ndarray, radius: float) -> np.ndarray:
    ys, xs = np.indices(shape[:2])
    return (xs - center[0]) ** 2 + (ys - center[1]) ** 2 <= radius**2


def pixel_uv(face: AlignedFace) -> np.ndarray:
    """(H, W, 2) face-frame coordinates of every crop pixel, u from the nose bridge."""
    frame = FaceFrame.of(face.landmarks)
    ys, xs = np.indices(face.image.shape[:2])
    uv = frame.to_uv(np.stack([xs, ys], -1).astype(float))
    return uv - (frame.to_uv(face.landmarks.xy[168])[0], 0)


# ---------------------------------------------------------------- where the shading goes


def test_au6_darkens_the_infraorbital_furrow_and_lights_the_cheek_apex(faces, editor, geometry_only):
    """AU6=4: under each lower lid (where the raised cheek meets the lid) a crease at least 12% darker than the
    geometry-only render; on the raised cheek's apex a soft highlight at least 2% brighter (both moved by the warp)."""
    au_edit = edit(AU6=4)
    for name in FACES:
        face = faces[name]
        frame = FaceFrame.of(face.landmarks)
        moved = face.landmarks.xy + editor.landmark_motion(face, au_edit)
        r = ratio(editor, geometry_only, face, au_edit)
        for lid, cheek in zip(LOWER_LID, CHEEK):
            furrow = moved[list(lid[3:6])].mean(axis=0) + 0.1 * frame.unit * frame.ey
            apex = moved[list(cheek)].mean(axis=0) - 0.05 * frame.unit * frame.ey
            darkest = r[disk(r.shape, furrow, 0.04 * frame.unit)].min()
            brightest = r[disk(r.shape, apex, 0.06 * frame.unit)].max()
            assert darkest < 0.88, f"{name}: infraorbital furrow only {1 - darkest:.1%} darker"
            assert brightest > 1.02, f"{name}: cheek apex only {brightest - 1:.1%} brighter"


def test_au12_deepens_the_nasolabial_fold(faces, editor, geometry_only):
    """AU12=4: between each nose wing and lip corner, lateral to the line joining them, the fold is darker than
    the geometry-only render somewhere (by 12% on average over the two sides, by 5% at least: the face's own
    light, hair over a cheek or a turned head's far side weaken one), and the cheek beside it brighter."""
    au_edit = edit(AU12=4)
    for name in FACES:
        face = faces[name]
        frame = FaceFrame.of(face.landmarks)
        moved = face.landmarks.xy + editor.landmark_motion(face, au_edit)
        r = ratio(editor, geometry_only, face, au_edit)
        darkest = []
        for side, (wing, corner) in zip((-1, 1), zip(NOSE_WING, (61, 291))):
            middle = (moved[list(wing)].mean(axis=0) + moved[corner]) / 2 + side * 0.12 * frame.unit * frame.ex
            region = disk(r.shape, middle, 0.12 * frame.unit)
            darkest.append(r[region].min())
            assert r[region].max() > 1.02, f"{name}: no highlight on the cheek beside the fold"
        assert max(darkest) < 0.95 and np.mean(darkest) < 0.88, f"{name}: nasolabial folds {darkest}"


def test_au1_adds_horizontal_lines_on_the_forehead(faces, editor, geometry_only):
    """AU1=4 at least doubles the vertical-gradient energy of the central forehead (horizontal creases)."""
    au_edit = edit(AU1=4)
    for name in FACES:
        face = faces[name]
        uv = pixel_uv(face)
        frame = FaceFrame.of(face.landmarks)
        moved = face.landmarks.xy + editor.landmark_motion(face, au_edit)
        brow = frame.to_uv(moved[[107, 336]])[:, 1].mean()
        region = (np.abs(uv[..., 0]) < 0.25) & (uv[..., 1] < brow - 0.08) & (uv[..., 1] > brow - 0.4)
        energy = [(np.gradient(luma(e.edit(face, [au_edit])[0]), axis=0)[region] ** 2).sum()
                  for e in (editor, geometry_only)]
        assert energy[0] > 2 * energy[1], f"{name}: forehead vertical-gradient energy x{energy[0] / energy[1]:.2f}"


@pytest.mark.parametrize("au", sorted(DESIGNS))
def test_each_appearance_au_changes_the_face_inside_it(faces, editor, geometry_only, au):
    """Every AU with an appearance visibly changes the skin (some pixel by 6%+) and nothing outside the face
    region (the existing guarantee of the warp, kept by the shading)."""
    for name in FACES:
        face = faces[name]
        r = ratio(editor, geometry_only, face, edit(**{au: 4}))
        assert np.abs(r - 1).max() > 0.06, f"{au} on {name}"
        outside = face_mask(face.landmarks, face.size) == 0
        assert np.abs(r[outside] - 1).max() == 0, f"{au} on {name} shaded outside the face"


# ---------------------------------------------------------------- how the shading looks


def test_maps_have_no_hard_lines(faces, editor):
    """A 1-px blur changes every map by at most 15% of its peak (a Gaussian line of sigma 1 px loses 29%, the
    creases here are at least 2 px): no pencil lines. AU17's dimpling is a fine texture by design, kept shallow.
    The slope stays below 0.12 per pixel at intensity 5."""
    for name in FACES:
        maps = editor.prepare(faces[name]).appearance.maps
        for key, (_, shade) in maps.items():
            padded = np.pad(shade, 6)
            fine = np.abs(padded - cv2.GaussianBlur(padded, (0, 0), 1.0)).max()
            peak = np.abs(shade).max()
            if key.startswith("AU17"):
                assert fine < 0.06, (name, key)
            else:
                assert fine <= 0.15 * peak, f"{name} {key}: {fine / peak:.0%} of the peak in 1-px detail"
            gy, gx = np.gradient(shade)
            assert np.hypot(gx, gy).max() < 0.12, f"{name} {key}: slope {np.hypot(gx, gy).max():.3f} / px"


def test_highlights_and_shadows_stay_within_their_limits(faces, editor):
    """Even many AUs at the largest intensity brighten by at most HIGHLIGHT and darken by at most SHADOW."""
    app = editor.prepare(faces["047"]).appearance
    everything = edit(**{au: 10 for au in DESIGNS})
    _, shade = app.shade(everything)
    assert shade.min() >= -HIGHLIGHT - 1e-6 and shade.max() <= SHADOW + 1e-6
    assert shade.min() < -0.03 and shade.max() > 0.2


def test_shading_scales_with_intensity_and_only_for_positive_intensities(faces, editor, geometry_only):
    app = editor.prepare(faces["100"]).appearance
    (block, two), (block4, four) = app.shade(edit(AU12=2)), app.shade(edit(AU12=4))
    assert block == block4
    np.testing.assert_allclose(2 * two, four, atol=1e-6)
    _, six = app.shade(edit(AU12=6))
    _, nine = app.shade(edit(AU12=9))
    np.testing.assert_array_equal(six, nine)  # deepening no further beyond 6
    assert app.shade(edit(AU12=-3)) is None and app.shade(edit(AU26=3)) is None
    face = faces["100"]
    for au_edit in (edit(AU12=-3), edit(AU6=-2, AU1=-4)):
        assert np.array_equal(editor.edit(face, [au_edit])[0], geometry_only.edit(face, [au_edit])[0])


@pytest.mark.parametrize("au", sorted(k for k in DESIGNS if k not in ("AU17",)))
def test_one_sided_shading_stays_on_its_side(faces, editor, au):
    """``AU6L`` shades the person's left half (image right) as ``AU6`` does there and nothing on the other half."""
    for name in ("001", "047", "080"):
        face = faces[name]
        app = editor.prepare(face).appearance
        u = pixel_uv(face)[..., 0]
        both = np.zeros(u.shape)
        block, shade = app.shade(edit(**{au: 4}))
        both[block] = shade
        for side, own, other in (("L", u > 0.1, u < -0.1), ("R", u < -0.1, u > 0.1)):
            one = np.zeros(u.shape)
            block, shade = app.shade(edit(**{au + side: 4}))
            one[block] = shade
            assert np.abs(one[other]).max() == 0, (name, au + side)
            np.testing.assert_allclose(one[own], both[own], atol=TRIM)  # each map is cut where it is fainter
            assert np.abs(one[own]).max() > 0.05, (name, au + side)

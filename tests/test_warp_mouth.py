"""What the warp editor paints into an opened mouth: cavity, upper teeth with individual teeth, lower
teeth in wide openings, the person's own teeth kept, colours in the face's lighting (real demo faces)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

from complexface.au import AUEdit
from complexface.editors.warp import WarpEditor, mouth
from complexface.faces import AlignedFace
from complexface.faces.landmarks import LOWER_INNER_LIP, UPPER_INNER_LIP
from tests.warp_helpers import edit, luma

CLOSED = ("001", "047", "080", "100", "059")
"""Neutral closed-mouth faces of different groups, plus a turned head (059)."""
OPEN_MOUTH = "014"
"""Smiles with his upper teeth showing."""


@pytest.fixture(scope="module")
def faces(aligned_faces: dict[str, AlignedFace]) -> dict[str, AlignedFace]:
    return {k: aligned_faces[k] for k in [*CLOSED, OPEN_MOUTH]}


@pytest.fixture(scope="module")
def editor() -> WarpEditor:
    return WarpEditor(cache_faces=8)


def opening(face: AlignedFace, editor: WarpEditor, au_edit: AUEdit, reach: float = 0.6):
    """Columns over the middle of the opened mouth (``reach`` half widths either side of its centre)
    with the moved upper and lower inner lips' rows there."""
    moved = face.landmarks.xy + editor.landmark_motion(face, au_edit)
    upper, lower = moved[list(UPPER_INNER_LIP)], moved[list(LOWER_INNER_LIP)]
    center, half = (upper[0, 0] + upper[-1, 0]) / 2, (upper[-1, 0] - upper[0, 0]) / 2
    xs = np.arange(int(center - reach * half), int(center + reach * half) + 1)
    top = np.interp(xs, *upper[np.argsort(upper[:, 0])].T)
    bottom = np.interp(xs, *lower[np.argsort(lower[:, 0])].T)
    return xs, top, bottom


def teeth_row(out: np.ndarray, xs: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Per column, the brightest pixel of the upper 40% of the opening (the upper teeth)."""
    y = luma(out)
    return np.array([y[round(t):round(t + 0.4 * (b - t)) + 1, x].max() for x, t, b in zip(xs, top, bottom)])


def test_an_opened_mouth_shows_individual_upper_teeth_over_a_dark_cavity(faces, editor):
    """AU25+AU26: a bright row of teeth under the upper lip, set off from each other by darker gaps
    (several minima along the row), brightest in the middle (the arch turns away towards the
    corners), over a cavity much darker than the teeth."""
    au_edit = edit(AU25=3, AU26=3)
    for name in CLOSED:
        face = faces[name]
        out = editor.edit(face, [au_edit])[0]
        xs, top, bottom = opening(face, editor, au_edit)
        row = teeth_row(out, xs, top, bottom)
        y = luma(out)
        cavity = np.median([np.median(y[int(t + 0.5 * (b - t)):int(t + 0.75 * (b - t)) + 1, x])
                            for x, t, b in zip(xs, top, bottom)])
        assert np.median(row) > 2.5 * cavity, f"{name}: teeth {np.median(row):.0f}, cavity {cavity:.0f}"
        gaps, _ = find_peaks(-row, prominence=0.04 * np.median(row))
        assert len(gaps) >= 4, f"{name}: {len(gaps)} gaps between teeth"
        middle = np.abs(xs - xs.mean()) < 0.2 * (xs[-1] - xs[0])
        assert row[middle].mean() > 1.05 * row[~middle].mean(), name


def test_the_upper_teeth_stay_with_the_skull(faces, editor):
    """The teeth are fixed to the face, not to the lips: a wider jaw drop uncovers more of the cavity
    but leaves the teeth row where it was (the centre of the incisors' brightest band moves < 2 px)."""
    face = faces["001"]
    rows = []
    for au_edit in (edit(AU25=3, AU26=2), edit(AU25=3, AU26=4)):
        out = editor.edit(face, [au_edit])[0]
        xs, top, bottom = opening(face, editor, au_edit, reach=0.25)
        y = luma(out)[:, xs]
        bright = y > 0.85 * y[int(top.min()):int(bottom.max())].max()
        rows.append(np.median(np.nonzero(bright)[0]))
    assert abs(rows[0] - rows[1]) < 2, rows


def test_lower_teeth_show_in_a_wide_jaw_drop_only(faces, editor, monkeypatch):
    """The lower incisors' tips appear just above the lower lip when the jaw drops far (AU26=5), with
    gaps between them, and never in a narrow lip parting (AU25=2): the pixels they change."""
    for name in CLOSED:
        face = faces[name]
        wide, narrow = edit(AU26=5), edit(AU25=2)
        with_teeth = editor.edit(face, [wide, narrow])
        with monkeypatch.context() as patch:
            patch.setattr(mouth, "LOWER_SHOW", 0.0)
            without = editor.edit(face, [wide, narrow])
        assert np.array_equal(with_teeth[1], without[1]), f"{name}: lower teeth in AU25=2"
        lit, unlit = luma(with_teeth[0]), luma(without[0])
        changed = np.abs(lit - unlit) > 15
        xs, top, bottom = opening(face, editor, wide)
        along = changed[:, xs].any(axis=0).mean()
        assert along > 0.7, f"{name}: lower teeth along {along:.0%} of the middle of the mouth"
        rows, cols = np.nonzero(changed)
        middle = np.interp(cols, xs, (top + bottom) / 2, left=np.inf, right=np.inf)
        assert (rows > middle)[np.isfinite(middle)].all(), f"{name}: lower teeth above the middle of the opening"
        assert (lit > unlit)[changed].mean() > 0.9, f"{name}: lower teeth not lighter than the cavity"
        tips = np.array([lit[changed[:, x], x].max() for x in xs if changed[:, x].any()])
        gaps, _ = find_peaks(-tips, prominence=4)
        assert len(gaps) >= 2, f"{name}: {len(gaps)} gaps between the lower teeth"


def test_an_open_source_mouth_keeps_its_own_teeth(faces, editor):
    """014's upper teeth show in the source: no synthetic teeth are painted; the mouth painting
    only darkens (the new gap between his own teeth), it never lightens a pixel."""
    face = faces[OPEN_MOUTH]
    assert editor.prepare(face).mouth.teeth is None
    for au_edit in (edit(AU25=3, AU26=3), edit(AU26=5), edit(AU6=3, AU12=4, AU25=2)):
        painted = luma(editor.edit(face, [au_edit])[0])
        bare = luma(WarpEditor(mouth_interior=False).edit(face, [au_edit])[0])
        assert (painted < bare - 30).sum() > 200, au_edit
        assert (painted - bare).max() < 10, au_edit


def test_teeth_take_the_face_lighting(faces, editor):
    """Teeth are not pure white: warm (red >= green > blue), and a darker photo gets darker teeth."""
    face = faces["001"]
    teeth = editor.prepare(face).mouth.teeth
    assert teeth.max() < 235 and teeth[0] >= teeth[1] > teeth[2], teeth
    dim = AlignedFace((face.image * 0.6).astype(np.uint8), face.landmarks, face.matrix)
    ratio = editor.prepare(dim).mouth.teeth.mean() / teeth.mean()
    assert 0.5 < ratio < 0.7, ratio


def test_the_mouth_is_painted_only_where_it_opens(faces):
    """The zero edit is byte-identical, and an edit that does not part the lips paints nothing."""
    painting, bare = WarpEditor(), WarpEditor(mouth_interior=False)
    for name in (*CLOSED, OPEN_MOUTH):
        face = faces[name]
        assert np.array_equal(painting.edit(face, [AUEdit({})])[0], face.image)
        assert np.array_equal(painting.edit(face, [edit(AU25=0, AU26=0)])[0], face.image)
        for au_edit in (edit(AU4=3), edit(AU1=2, AU2=2)):
            assert np.array_equal(painting.edit(face, [au_edit])[0], bare.edit(face, [au_edit])[0]), name

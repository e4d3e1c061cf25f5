"""AU change read from landmark motion: axes and units, antagonists, sides, leakage grouping, alignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from complexface.au import EDITABLE
from complexface.facs_motion import (
    BILATERAL,
    INNER_BROW,
    INNER_LIPS,
    LIP_CORNER,
    LOWER_LID_AND_CHEEK,
    LOWER_LIP_BOTTOM,
    MENTON,
    NOSE_WING,
    OUTER_BROW,
    SIDED,
    UNIT_AU4_DOWN,
    UPPER_LID,
)
from complexface.measure import COUPLED, UNITS, au_mse, change, leakage_aus, load_template

TEMPLATE = load_template().points.astype(np.float64)
U12 = UNITS["AU12"]


def moved(ids, dx: float = 0.0, dy: float = 0.0, points: np.ndarray = TEMPLATE) -> np.ndarray:
    """A copy of ``points`` with landmarks ``ids`` (any nesting) moved by dx outward (away from the
    midline) and dy down, in IOD units of the template."""
    out = points.copy()
    for i in np.ravel(ids):
        out[i, 0] += dx * (np.sign(points[i, 0]) or 1.0)
        out[i, 1] += dy
    return out


def big(delta: dict, skip=(), limit: float = 0.05) -> dict:
    """The readings above ``limit`` units, except ``skip``."""
    return {k: round(float(v), 2) for k, v in delta.items() if k not in skip and abs(v) > limit}


def test_a_face_against_itself_changes_nothing_and_pairs_broadcast():
    faces = np.stack([TEMPLATE, moved(LIP_CORNER, dy=-2 * UNITS["AU12"])])
    assert all(np.abs(v).max() < 1e-9 for v in change(faces, faces).values())
    many = change(TEMPLATE, faces)  # one source, many edits
    assert many["AU12"].shape == (2,) and abs(many["AU12"][0]) < 1e-9 and many["AU12"][1] == pytest.approx(2.0)
    assert au_mse(change(TEMPLATE, TEMPLATE), "AU6+AU12=3+4") == pytest.approx((9 + 16) / 12)
    assert list(change(TEMPLATE, TEMPLATE, sides=True)) == [*EDITABLE, *SIDED]


KNOWN_MOVES = {
    # AU: (landmarks, outward, down) for 2 FACS steps, and the readings allowed besides it (coupled by design)
    "AU1": (INNER_BROW, 0.0, -2 * UNITS["AU1"], ()),
    "AU2": (OUTER_BROW, 0.0, -2 * UNITS["AU2"], ()),
    "AU4": (INNER_BROW, -2 * UNITS["AU4"], 2 * UNIT_AU4_DOWN, ()),
    "AU5": (UPPER_LID, 0.0, -2 * UNITS["AU5"], ()),
    "AU6": (LOWER_LID_AND_CHEEK, 0.0, -2 * UNITS["AU6"], ()),
    "AU9": (NOSE_WING, 0.0, -2 * UNITS["AU9"], ()),
    "AU12": (LIP_CORNER, 2 * UNITS["AU12"], -2 * UNITS["AU12"], ()),  # oblique: as far out as up
    "AU15": (LIP_CORNER, 0.0, 2 * UNITS["AU15"], ()),
    "AU17": ((LOWER_LIP_BOTTOM,), 0.0, -2 * UNITS["AU17"], ()),
    "AU20": (LIP_CORNER, 2 * UNITS["AU20"], 0.0, ()),
    "AU25": (tuple({pair[1] for side in INNER_LIPS for pair in side}), 0.0, 2 * UNITS["AU25"], ()),
    "AU26": ((MENTON, LOWER_LIP_BOTTOM), 0.0, 2 * UNITS["AU26"], ()),
}


@pytest.mark.parametrize("au", sorted(KNOWN_MOVES))
def test_each_au_reads_two_steps_of_its_own_motion_and_nothing_else(au):
    ids, dx, dy, allowed = KNOWN_MOVES[au]
    delta = change(TEMPLATE, moved(ids, dx, dy))
    assert delta[au] == pytest.approx(2.0, abs=0.05)
    assert big(delta, skip=(au, *allowed)) == {}


def test_a_smile_never_reads_as_au15_going_away_and_a_frown_on_the_corners_is_au15():
    downturned = moved(LIP_CORNER, dy=0.03)  # a mouth that turns down at rest
    smile = change(downturned, moved(LIP_CORNER, dx=3 * U12, dy=-3 * U12, points=downturned))
    assert smile["AU12"] == pytest.approx(3.0, abs=0.05) and smile["AU15"] == pytest.approx(0, abs=1e-9)
    down = change(TEMPLATE, moved(LIP_CORNER, dy=0.048))
    assert down["AU15"] == pytest.approx(3.0) and down["AU12"] == pytest.approx(0, abs=1e-9)


def test_antagonist_motion_goes_to_the_requested_member_signed():
    down = moved(LIP_CORNER, dx=-2 * U12, dy=2 * U12)  # AU12 reversed: corners down and in
    asked = change(TEMPLATE, down, request="AU12=-2")
    assert asked["AU12"] == pytest.approx(-2.0) and asked["AU15"] == 0 and abs(asked["AU20"]) < 0.05
    assert change(TEMPLATE, down, request="AU15=2")["AU15"] == pytest.approx(2 * U12 / UNITS["AU15"])
    brows_up = moved(INNER_BROW, dy=-0.04)
    assert change(TEMPLATE, brows_up)["AU1"] > 1 and change(TEMPLATE, brows_up)["AU4"] == pytest.approx(0, abs=1e-9)
    relaxed = change(TEMPLATE, brows_up, request="AU4=-2")  # lowering undone: AU4 negative, not AU1
    assert relaxed["AU4"] == pytest.approx(-1.0) and relaxed["AU1"] == 0


def test_lips_parting_is_not_read_as_the_chin_relaxing_nor_brow_lowering_as_au2_relaxing():
    parted = moved((LOWER_LIP_BOTTOM, *[p[1] for p in INNER_LIPS[0]]), dy=0.06)  # lower lip down: lips part
    assert change(TEMPLATE, parted)["AU17"] == 0
    assert change(TEMPLATE, parted, request="AU17=1")["AU17"] == pytest.approx(-3.0)
    outer_down = moved(OUTER_BROW, dy=0.04)  # the whole brow lowered (AU4): not AU2 relaxing
    assert change(TEMPLATE, outer_down)["AU2"] == pytest.approx(0, abs=1e-9)
    assert change(TEMPLATE, outer_down, request="AU2=-1")["AU2"] == pytest.approx(-0.04 / UNITS["AU2"])
    jaw = moved((MENTON, LOWER_LIP_BOTTOM), dy=0.12)
    jaw = moved(LIP_CORNER, dy=0.04, points=jaw)  # a jaw drop drags the corners down: that motion is shown
    delta = change(TEMPLATE, jaw, request="AU26=2")
    assert delta["AU26"] == pytest.approx(2.0) and delta["AU15"] == pytest.approx(2.5)
    assert "AU15" not in leakage_aus("AU26=2")  # ... as a coupled AU, not as leakage


def test_each_side_is_read_from_the_persons_point_of_view():
    left = moved(LIP_CORNER[1], dx=2 * U12, dy=-2 * U12)  # the image-right corner: the person's left
    delta = change(TEMPLATE, left, sides=True)
    assert delta["AU12L"] == pytest.approx(2.0) and delta["AU12R"] == 0 and delta["AU12"] == pytest.approx(1.0)
    assert {k[:-1] for k in SIDED} == set(BILATERAL)
    one_sided = change(TEMPLATE, moved(LIP_CORNER[1], dy=2 * U12), request={"AU12L": -2}, sides=True)
    assert one_sided["AU12L"] == pytest.approx(-2.0) and one_sided["AU15L"] == 0


def test_readings_ignore_how_the_head_moved_between_source_and_edit():
    """An edit on a head that also turned, scaled and shifted reads the same as the expression alone."""
    expression = moved(LIP_CORNER, dx=0.05, dy=-0.05)
    expression = moved(INNER_BROW, dx=-0.02, dy=0.03, points=expression)
    still = change(TEMPLATE, expression)
    rotation = Rotation.from_euler("xyz", [8, -12, 5], degrees=True).as_matrix()
    turned = change(TEMPLATE, 140 * expression @ rotation.T + [250, 260, 10])
    for au in EDITABLE:
        assert turned[au] == pytest.approx(still[au], abs=1e-6), au
    source = 140 * TEMPLATE @ rotation.T  # and the same for a turned source
    both = change(source, 140 * expression @ rotation.T)
    for au in EDITABLE:
        assert both[au] == pytest.approx(still[au], abs=1e-6), au


def test_the_alignment_is_not_tilted_by_an_expression_that_moves_some_rigid_points():
    squint = moved((33, 263), dy=-0.02)  # outer eye corners lifted by a strong AU6
    squint = moved(LIP_CORNER, dx=2 * U12, dy=-2 * U12, points=squint)
    delta = change(TEMPLATE, squint)
    assert delta["AU12"] == pytest.approx(2.0, abs=0.1)
    assert big(delta, skip=("AU12",), limit=0.12) == {}  # 0.26 (AU5) without the reweighting


def test_leakage_counts_only_aus_independent_of_the_request():
    assert all(a in COUPLED[b] for a, group in COUPLED.items() for b in group)
    assert leakage_aus("AU4=3") == ["AU5", "AU6", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26"]
    assert leakage_aus("AU6+AU12=3+3") == ["AU1", "AU2", "AU4", "AU5", "AU17", "AU25", "AU26"]
    assert leakage_aus("neutral") == list(EDITABLE)
    assert set(leakage_aus("AU26=2")).isdisjoint({"AU15", "AU17", "AU25", "AU26"})

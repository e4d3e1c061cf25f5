"""AU registry, edits and their parsers."""

import warnings

import pytest

from complexface.au import AUS, BILATERAL, EDITABLE, AUEdit, AUError, from_names_values, normalize_name, parse_edit


def test_registry_has_magicface_order_and_non_editable_units():
    assert EDITABLE == ("AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26")
    assert AUS["AU12"].name == "lip corner puller" and AUS["AU12"].regions
    assert not AUS["AU7"].editable and not AUS["AU24"].editable


@pytest.mark.parametrize(("spec", "expected"), [
    ("AU6+AU12=3+3", {"AU6": 3.0, "AU12": 3.0}),
    ("AU4=-2", {"AU4": -2.0}),
    ("AU6+AU12:2+2", {"AU6": 2.0, "AU12": 2.0}),
    ("AU4:-2", {"AU4": -2.0}),
    ("AU6+AU12=3+-2", {"AU6": 3.0, "AU12": -2.0}),
    ("AU12=3,AU6=2", {"AU6": 2.0, "AU12": 3.0}),
    ("au12:1.5 6:-1", {"AU6": -1.0, "AU12": 1.5}),
    ({"AU1": 2, "au2": "1"}, {"AU1": 2.0, "AU2": 1.0}),
    (("AU6+AU12", "3+3"), {"AU6": 3.0, "AU12": 3.0}),
    ((["AU25", "AU26"], [1, 2]), {"AU25": 1.0, "AU26": 2.0}),
    ("neutral", {}),
    ("AU4=0", {}),
])
def test_parse_accepts_every_documented_form(spec, expected):
    assert dict(parse_edit(spec).values) == expected


def test_edit_vector_label_and_scaling():
    edit = parse_edit("AU12=3,AU6=2")
    assert edit.vector() == [0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0]
    assert edit.label == "AU6+AU12=2+3"
    assert edit.scaled(-1).label == "AU6+AU12=-2+-3"
    assert edit.scaled(-1).slug == "AU6+AU12_m2+m3"
    assert parse_edit(edit.label) == edit
    assert not AUEdit({}) and AUEdit({}).label == "neutral"


@pytest.mark.parametrize(("spec", "message"), [
    ("AU3=2", "unknown AU 'AU3'; editable AUs are: AU1, AU2"),
    ("AU7=1", "AU7 (lid tightener) is a FACS AU but not editable"),
    ("AU6+AU12=3", "2 AU names but 1 intensities"),
    ("AU6=x", "intensity for AU6 must be a number"),
    ("AU6=11", "out of range; use a value in [-10, 10]"),
    ("AU6=-10.5", "out of range"),
    ("AU6=nan", "out of range"),
    ("smile please", "cannot read AU edit"),
    (("AU6", "1+2"), "1 AU names but 2 intensities"),
    ({"AU6": 1, "6": 2}, "AU6 is given twice"),
    ("AU26L=2", "AU26 (jaw drop) acts on the midline and has no sides"),
    ("AU25R=1", "AU25 (lips part) acts on the midline"),
    ("AU12=2,AU12L=1", "AU12 is given both for both sides and per side"),
    ("AU12X=1", "unknown AU 'AU12X'"),
    ("AU7L=1", "AU7 (lid tightener) is a FACS AU but not editable"),
    ({"AU12L": 1, "12l": 2}, "AU12L is given twice"),
])
def test_bad_edits_raise_readable_errors(spec, message):
    with pytest.raises(AUError, match=None) as info:
        parse_edit(spec)
    assert message in str(info.value)


def test_strong_edits_warn_but_work():
    with pytest.warns(UserWarning, match="AU26 beyond"):
        edit = parse_edit("AU26=7")
    assert edit.values == {"AU26": 7.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_edit("AU26=5")


def test_names_values_refuses_truncation():
    with pytest.raises(AUError, match="give one intensity per AU"):
        from_names_values("AU1+AU2+AU4", "1+2")


def test_one_sided_aus_parse_order_and_count_half_in_the_vector():
    edit = parse_edit("AU12L=3")
    assert edit.values == {"AU12L": 3.0} and edit.sided and edit.label == "AU12L=3" and edit.slug == "AU12L_3"
    assert edit.vector()[EDITABLE.index("AU12")] == 1.5  # the mean of the two sides
    mixed = parse_edit({"au12r": 1, "AU6": 2, "12L": 3, "AU26": 1})
    assert list(mixed.values) == ["AU6", "AU12L", "AU12R", "AU26"]
    assert parse_edit("AU6+AU12L+AU12R+AU26=2+3+1+1") == mixed
    assert parse_edit("AU12L:3 AU4R:-1").values == {"AU4R": -1.0, "AU12L": 3.0}
    assert not parse_edit("AU12=3").sided and parse_edit("AU12L=3").scaled(2).values == {"AU12L": 6.0}
    assert {normalize_name(f"{au}{side}") for au in BILATERAL for side in "LR"} == {
        f"{au}{side}" for au in BILATERAL for side in "LR"}

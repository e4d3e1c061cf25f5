"""Study design: stimulus selection from a real edit run, Latin-square lists, seeded orders, practice and
attention placement, generated-image runs, config errors."""

from __future__ import annotations

import itertools
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

import study
from complexface.errors import user_error
from complexface.settings import SettingError
from complexface.study.design import OTHER, Design, latin_square
from complexface.study.folder import StudyError, StudyFolder
from complexface.study.sources import SOURCE, Candidate, read_runs
from complexface.study.store import Store
from complexface.study.tokens import add_raters
from tests.study_helpers import FACES, RECIPES, make_study, study_config


@pytest.fixture(scope="module")
def design(study_run_dir, tmp_path_factory) -> Design:
    folder = tmp_path_factory.mktemp("design") / "study"
    summary = make_study(study_run_dir, folder)
    assert summary["conditions"] == 4 and summary["lists"] == 4 and summary["missing_cells"] == 0
    return Design.load(StudyFolder(folder))


def test_run_candidates_carry_recipe_targets_face_and_group(study_run_dir):
    candidates = read_runs(study_run_dir)
    assert len(candidates) == len(FACES) * (len(RECIPES) + 1)  # every edit and each face's source
    masking = next(c for c in candidates if c.recipe == "anger_masking_smile")
    assert (masking.felt_target, masking.displayed_target, masking.intensity) == ("anger", "joy", 1.0)
    assert masking.label == "AU4+AU12+AU17=2+3+1" and masking.path.exists()
    source = next(c for c in candidates if c.baseline and c.face == "047")
    assert (source.recipe, source.felt_target, source.displayed_target, source.intensity) == (
        SOURCE, "neutral", "neutral", 0.0)
    assert source.face_group == "east_asian"


def test_lists_are_a_latin_square_over_conditions(design):
    conditions = [tuple(c) for c in design.conditions]
    assert conditions == [*((r, 1.0) for r in RECIPES), (SOURCE, 0.0)]
    reserved = {design.stimuli[s]["face"] for s in design.practice + design.attention_stimuli}
    main_faces = {f.split(".")[0] for f in FACES} - reserved
    assert len(reserved) == 1 and len(main_faces) == 5
    seen = Counter()
    for lst in design.lists:
        faces = [design.stimuli[s]["face"] for s in lst]
        assert sorted(faces) == sorted(main_faces)  # each face once per list: never in two conditions
        per_condition = Counter((design.stimuli[s]["recipe"], design.stimuli[s]["intensity"]) for s in lst)
        assert set(per_condition) == set(conditions) and max(per_condition.values()) - min(per_condition.values()) <= 1
        seen.update((design.stimuli[s]["face"], design.stimuli[s]["recipe"]) for s in lst)
    # over the lists every face appears in every condition, and exactly once
    assert set(seen) == {(f, c[0]) for f in main_faces for c in conditions} and set(seen.values()) == {1}


def test_latin_square_leaves_out_missing_cells_and_reports_them():
    faces, conditions = ["a", "b", "c"], [("x", 1.0), ("y", 1.0), ("source", 0.0)]
    cells = {(f, *c): Candidate(f, "g", c[0], c[1], "", "", Path(f"{f}{c[0]}")) for f in faces for c in conditions}
    del cells["b", "y", 1.0]
    lists, missing = latin_square(faces, conditions, cells)
    assert [[(c.face, c.recipe) for c in lst] for lst in lists] == [
        [("a", "x"), ("c", "source")], [("a", "y"), ("b", "source"), ("c", "x")],
        [("a", "source"), ("b", "x"), ("c", "y")]]
    assert missing == [{"list": 0, "face": "b", "recipe": "y", "intensity": 1.0}]


def test_rater_order_is_seeded_with_practice_first_and_attention_checks_between_trials(design):
    n_practice, n_main = len(design.practice), len(design.lists[0])
    orders = {}
    for rater in ("r000000000001", "r000000000002", "r000000000003"):
        seq = design.sequence(0, rater)
        assert seq == design.sequence(0, rater)  # reproducible from the study seed and the rater id
        orders[rater] = [t["stimulus"] for t in seq]
        kinds = [t["kind"] for t in seq]
        assert kinds[:n_practice] == ["practice"] * n_practice and "practice" not in kinds[n_practice:]
        assert sorted(t["stimulus"] for t in seq[:n_practice]) == sorted(design.practice)
        assert kinds.count("attention") == design.attention_trials == 2
        main = [t for t in seq[n_practice:] if t["kind"] != "attention"]
        assert sorted(t["stimulus"] for t in main) == sorted(design.lists[0]) and len(main) == n_main
        assert all(t["kind"] == ("baseline" if design.stimuli[t["stimulus"]]["recipe"] == SOURCE else "trial")
                   for t in main)
        checks = [i for i, k in enumerate(kinds) if k == "attention"]
        assert checks[0] > n_practice  # never the first scored trial
        assert all(b - a > 1 for a, b in itertools.pairwise(checks))  # never two in a row
        expected = [seq[i]["expected"] for i in checks]
        assert len(set(expected)) == len(expected) and OTHER not in expected and set(expected) <= set(design.options)
        assert all(design.stimuli[seq[i]["stimulus"]]["use"] == "attention" for i in checks)
    assert len(set(map(tuple, orders.values()))) == 3  # each rater has an order of their own


def test_attention_positions_vary_over_raters(design):
    positions = {tuple(i for i, t in enumerate(design.sequence(1, f"r{k:012d}")) if t["kind"] == "attention")
                 for k in range(40)}
    assert len(positions) > 5


def test_links_balance_raters_over_lists_and_store_only_token_hashes(study_run_dir, tmp_path):
    folder = StudyFolder(tmp_path / "study")
    make_study(study_run_dir, folder.path)
    design, store = Design.load(folder), Store(folder)
    links = add_raters(folder, 10, group="ja_students", language="ja")
    assert Counter(link.list for link in links) == {0: 3, 1: 3, 2: 2, 3: 2}
    raters = store.raters()
    assert {r["rater_group"] for r in raters} == {"ja_students"} and {r["language"] for r in raters} == {"ja"}
    database = b"".join(p.read_bytes() for p in folder.path.glob("study.sqlite*"))
    assert not any(link.token.encode() in database for link in links)
    by_id = {r["id"]: r for r in raters}
    for link in links:
        assert json.loads(by_id[link.rater]["seq"]) == design.sequence(link.list, link.rater)
        assert by_id[link.rater]["list"] == link.list


def test_selection_by_recipe_intensity_face_and_group(study_run_dir, tmp_path):
    make_study(study_run_dir, tmp_path / "s", "study.stimuli.recipes=[anger_masking_smile]",
               "study.stimuli.baseline=false", "study.stimuli.groups=[east_asian,black]", "study.practice.trials=0",
               "study.attention.trials=0")
    design = Design.load(StudyFolder(tmp_path / "s"))
    assert {s["recipe"] for s in design.stimuli.values()} == {"anger_masking_smile"}
    assert {s["face_group"] for s in design.stimuli.values()} == {"east_asian", "black"}
    assert len(design.lists) == 1 and not design.practice and not design.attention_stimuli
    with pytest.raises(StudyError, match="study.stimuli.recipes: not in the run: nope; the run has anger_masking"):
        make_study(study_run_dir, tmp_path / "t", "study.stimuli.recipes=[nope]")
    with pytest.raises(StudyError, match="study.stimuli.intensities: not in the run: 2.0"):
        make_study(study_run_dir, tmp_path / "u", "study.stimuli.intensities=[2]")


@pytest.mark.parametrize(("override", "message"), [
    ("study.options=[joy,anger]", "must include 'other'"),
    ("study.language=fr", "study.language must be one of en, ja"),
    ("+study.questions.mood=true", "unknown question(s) mood"),
    ("study.questions.free_text_max=0", "free_text_max must be 1..5000"),
    ("study.completion.redirect=http://example.org", "must be an https:// URL"),
    ("+study.texts.en.nonsense=x", "unknown key(s) nonsense"),
])
def test_bad_designs_are_refused_with_the_setting_named(tmp_path, override, message):
    cfg = study_config(tmp_path / "s", override, run_dir=tmp_path)
    with pytest.raises(Exception) as info:
        study.run(cfg)
    cause = user_error(info.value)
    assert isinstance(cause, SettingError) and message in str(cause)
    assert not (tmp_path / "s" / "design.json").exists()


def test_a_study_is_created_once_and_force_replaces_it_only_before_answers(study_run_dir, tmp_path):
    folder = StudyFolder(tmp_path / "s")
    make_study(study_run_dir, folder.path)
    with pytest.raises(StudyError, match="already holds a study; use a new study.dir, or force=true"):
        make_study(study_run_dir, folder.path)
    add_raters(folder, 2)
    make_study(study_run_dir, folder.path, "force=true", "study.seed=1")
    assert Design.load(folder).seed == 1 and Store(folder).raters() == []  # the old orders are gone
    with Store(folder).transaction() as conn:
        Store.add_rater(conn, "r1", "h", 0, [{"kind": "trial", "stimulus": "x"}], "en")
        conn.execute("INSERT INTO answers (rater, trial, answered_at) VALUES ('r1', 0, 'now')")
    with pytest.raises(StudyError, match="with 1 answers; use a new study.dir"):
        make_study(study_run_dir, folder.path, "force=true")


def test_study_from_generated_image_runs(study_run_dir, tmp_path):
    """A multirun folder of generate.py runs: the recipe generator's edit and source, and sd_lora's new faces."""
    root = tmp_path / "multirun"
    for i, face in enumerate(("001", "047")):
        out = root / str(i)
        out.mkdir(parents=True)
        shutil.copy(study_run_dir / f"crops/{face}/source.png", out / "source.png")
        shutil.copy(study_run_dir / f"crops/{face}/AU4+AU12+AU17_2+3+1.png", out / "edit.png")
        shutil.copy(study_run_dir / f"photos/{face}/AU4+AU12+AU17_2+3+1.jpg", out / "photo.jpg")
        demo = Path(study.__file__).parent / "complexface/assets/demo_faces" / f"{face}.jpg"
        (out / "choice.json").write_text(json.dumps({
            "prompt": "smiling but angry", "recipe_id": "anger_masking_smile", "felt": "anger", "displayed": "joy",
            "applied": {"AU4": 2, "AU12": 3, "AU17": 1}, "scale": 1.0, "face": str(demo),
            "outputs": {"source": f"/elsewhere/{i}/source.png", "edit": f"/elsewhere/{i}/edit.png",
                        "photo": f"/elsewhere/{i}/photo.jpg"}}))
    sd = root / "2"
    (sd / "images").mkdir(parents=True)
    shutil.copy(study_run_dir / "crops/006/source.png", sd / "images/00_seed0.png")
    (sd / "choice.json").write_text(json.dumps({"generator": "sd_lora", "lora_scale": 1.0, "images": [
        {"prompt": "a polite smile", "recipe_id": "polite_smile", "seed": 0, "file": "/gone/images/00_seed0.png"}]}))
    candidates = {(c.face, c.recipe): c for c in read_runs(root)}
    assert set(candidates) == {("001", "anger_masking_smile"), ("001", SOURCE), ("047", "anger_masking_smile"),
                               ("047", SOURCE), ("seed0", "polite_smile")}
    assert candidates["047", "anger_masking_smile"].face_group == "east_asian"
    assert candidates["001", "anger_masking_smile"].label == "AU4+AU12+AU17=2+3+1"
    assert (candidates["seed0", "polite_smile"].felt_target, candidates["seed0", "polite_smile"].face_group) == (
        "neutral", "generated")
    summary = make_study(root, tmp_path / "s", "study.practice.trials=0", "study.attention.trials=0")
    # seed0 (a new face per seed) only exists as polite_smile: its other cells are missing, and reported
    assert summary["conditions"] == 3 and summary["missing_cells"] == 4 and summary["faces_per_list"] == [1, 3]


def test_create_needs_a_run_and_later_actions_need_a_study(tmp_path):
    with pytest.raises(StudyError, match="is not an edit run"):
        study.run(study_config(tmp_path / "s", run_dir=tmp_path))
    with pytest.raises(StudyError, match="action=create needs input="):
        study.run(study_config(tmp_path / "s"))
    with pytest.raises(StudyError, match="no study in .*: run `python study.py action=create"):
        study.run(study_config(tmp_path / "s", action="links"))
    with pytest.raises(StudyError, match="action must be one of create, links, serve, simulate, export, analyze"):
        study.run(study_config(tmp_path / "s", action="delete"))

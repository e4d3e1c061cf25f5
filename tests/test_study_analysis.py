"""analyze() end to end on simulated answers with planted recognition rates (no server needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from complexface.study import analysis
from complexface.study.analysis import analyze

OPTIONS = ["joy", "sadness", "anger", "fear", "disgust", "surprise", "contempt", "neutral", "other"]
CHANCE = 1 / len(OPTIONS)
FACES = {f"f{i}": "east_asian" if i < 4 else "western" for i in range(8)}
INTENSITIES = (0.5, 1.0)
# recipe -> (displayed target, felt target, planted displayed rate, planted felt rate per face group)
PLANTED = {
    "happiness_prototype": ("joy", "joy", {"east_asian": 0.9, "western": 0.9}, {"east_asian": 0.85, "western": 0.85}),
    # the bias to find: the felt anger behind the smile is read less often on East-Asian faces
    "anger_masking_smile": ("joy", "anger", {"east_asian": 0.8, "western": 0.8}, {"east_asian": 0.3, "western": 0.6}),
    # planted at chance: every answer drawn uniformly from the options
    "suppressed_anger": ("neutral", "anger", {"east_asian": CHANCE, "western": CHANCE},
                         {"east_asian": CHANCE, "western": CHANCE}),
    "source": ("neutral", "neutral", {"east_asian": 0.7, "western": 0.7}, {"east_asian": 0.6, "western": 0.6}),
}
COLUMNS = ["rater", "rater_group", "list", "trial", "kind", "stimulus", "recipe", "felt_target", "displayed_target",
           "intensity", "face", "face_group", "displayed_answer", "felt_answer", "genuineness", "confidence",
           "free_text", "rt_ms", "answered_at", "attention_expected", "attention_passed"]


def _answer(rng: np.random.Generator, target: str, rate: float) -> str:
    if rate == CHANCE:  # a guess: uniform over every option, the target included
        return str(rng.choice(OPTIONS))
    if rng.random() < rate:
        return target
    return str(rng.choice([o for o in OPTIONS if o != target]))


def simulate(study_dir: Path, n_raters: int = 36, seed: int = 7) -> dict[str, list[str]]:
    """Write design.json and export/answers.csv of a counterbalanced study: two lists (each face at one
    intensity per list), 3 recipes x 8 faces + 8 baselines + 3 attention checks + 2 practice trials per
    rater; good raters answer with the PLANTED rates, plus raters who must be excluded. Returns who is who."""
    rng = np.random.default_rng(seed)
    (study_dir / "export").mkdir(parents=True)
    (study_dir / "design.json").write_text(json.dumps({"options": OPTIONS, "chance": CHANCE}))
    raters = {f"good{i:02d}": "good" for i in range(n_raters)}
    raters |= {f"careless{i}": "attention" for i in range(3)} | {f"speeder{i}": "fast" for i in range(2)}
    rows, failures = [], {}
    for number, (rater, kind) in enumerate(raters.items()):
        lst = number % 2
        group = ["east_asian", "western", ""][number % 3]  # one in three did not say
        trials = [("practice", "happiness_prototype", "f0", 1.0)] * 2
        trials += [("trial", recipe, face, INTENSITIES[(int(face[1:]) + lst) % 2])
                   for recipe in ("happiness_prototype", "anger_masking_smile", "suppressed_anger") for face in FACES]
        trials += [("baseline", "source", face, 0.0) for face in FACES] + [("attention", "", "f1", 0.0)] * 3
        order = [trials[0], trials[1], *[trials[2:][i] for i in rng.permutation(len(trials) - 2)]]
        for index, (what, recipe, face, intensity) in enumerate(order):
            row = dict.fromkeys(COLUMNS, "")
            row.update(rater=rater, rater_group=group, list=lst, trial=index, kind=what, face=face,
                       face_group=FACES[face], intensity=intensity, confidence=int(rng.integers(1, 6)),
                       answered_at="2025-01-01T00:00:00Z", rt_ms=float(rng.lognormal(np.log(2500), 0.4)))
            if what == "attention":
                row.update(stimulus="attention", recipe="attention", displayed_target="surprise",
                           attention_expected="surprise")
                failures[rater] = failures.get(rater, 0) + 1
                passed = kind != "attention" and not (rater == "good01" and failures[rater] == 1)  # one allowed
                row.update(displayed_answer="surprise" if passed else "joy", attention_passed=str(passed).lower())
                rows.append(row)
                continue
            displayed, felt, displayed_rate, felt_rate = PLANTED[recipe]
            row.update(stimulus=f"{face}__{recipe}__{intensity:g}", recipe=recipe, displayed_target=displayed,
                       felt_target=felt)
            if kind == "good" or what == "practice":
                row.update(displayed_answer=_answer(rng, displayed, displayed_rate[FACES[face]]),
                           felt_answer=_answer(rng, felt, felt_rate[FACES[face]]))
            else:  # careless and speeding raters guess
                row.update(displayed_answer=str(rng.choice(OPTIONS)), felt_answer=str(rng.choice(OPTIONS)))
            if kind == "fast":
                row["rt_ms"] = float(rng.uniform(120, 250))
            genuine = {"happiness_prototype": 5, "anger_masking_smile": -3, "suppressed_anger": 0, "source": 2}[recipe]
            row["genuineness"] = int(np.clip(round(genuine + rng.normal(0, 2)), -7, 7))
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    fast = (frame["rater"] == "good00") & (frame["kind"] == "baseline") & (frame["face_group"] == "east_asian")
    frame.loc[fast, "rt_ms"] = 100.0  # 4 of 32 answers too fast (<= 20%): the answers are dropped, the rater kept
    # the export guards cells starting with = + - @ against spreadsheet formulas
    frame["genuineness"] = [f"'{g}" if str(g).startswith("-") else g for g in frame["genuineness"]]
    frame.loc[0, "free_text"] = "'=HYPERLINK(1)"
    frame.to_csv(study_dir / "export" / "answers.csv", index=False)
    return {kind: [r for r, k in raters.items() if k == kind] for kind in ("good", "attention", "fast")}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict, dict]:
    study_dir = tmp_path_factory.mktemp("study")
    who = simulate(study_dir)
    summary = analyze(study_dir, {"wandb": True, "reference_face_group": "western"})
    return study_dir, who, summary


def _csv(study_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(study_dir / "analysis" / name, keep_default_na=False, na_values=[""])


def test_careless_and_speeding_raters_are_excluded_and_reported(study):
    study_dir, who, summary = study
    excluded = _csv(study_dir, "exclusions.csv")
    assert set(excluded.loc[excluded["rule"] == "attention", "rater"]) == set(who["attention"])
    assert set(excluded.loc[excluded["rule"] == "too fast", "rater"]) == set(who["fast"])
    assert all("attention checks" in d or "faster than 300 ms" in d for d in excluded["detail"])
    assert summary["raters"] == 41 and summary["raters_excluded"] == 5 and summary["raters_included"] == 36
    assert "good01" not in set(excluded["rater"])  # one failed check is allowed
    assert summary["too_fast_dropped"] == 4  # good00's fast answers go, the rater stays
    assert summary["practice_ignored"] == 41 * 2
    assert summary["scored_answers"] == 36 * 32 - 4


def test_recognition_recovers_the_planted_rates_within_their_intervals(study):
    study_dir, _, summary = study
    table = _csv(study_dir, "recognition.csv")
    cells = table[table["level"] == "recipe x face_group"]
    assert len(cells) == 2 * 4 * 2  # question x recipe (incl. the baseline) x face group
    for row in cells.itertuples():
        displayed, felt, displayed_rate, felt_rate = PLANTED[row.recipe]
        planted = (displayed_rate if row.question == "displayed" else felt_rate)[row.face_group]
        assert row.ci_low <= planted <= row.ci_high, (row.question, row.recipe, row.face_group, row.rate, planted)
        assert row.target == (displayed if row.question == "displayed" else felt)
        dropped = 4 if (row.recipe, row.face_group) == ("source", "east_asian") else 0  # good00's fast answers
        assert row.n == 36 * 4 - dropped  # 36 raters x 4 faces of the group
    by_recipe = table[table["level"] == "recipe"].set_index(["question", "recipe"])
    assert not by_recipe.loc[("displayed", "suppressed_anger"), "above_chance"]
    assert not by_recipe.loc[("felt", "suppressed_anger"), "above_chance"]
    assert by_recipe.loc[("felt", "anger_masking_smile"), "above_chance"]
    assert by_recipe.loc[("felt", "suppressed_anger"), "chance"] == pytest.approx(CHANCE, abs=1e-6)
    assert (by_recipe["p_holm"] >= by_recipe["p"]).all()
    fine = table[table["level"] == "recipe x intensity x face_group"]
    assert len(fine) == 2 * (3 * 2 * 2 + 2)  # the baseline has one intensity (0)
    by_rater = table[table["level"] == "recipe x intensity x face_group x rater_group"]
    assert set(by_rater["rater_group"]) == {"east_asian", "western", "unreported"}
    assert summary["not_recognised"] == ["anger_masking_smile", "suppressed_anger"]  # felt anger: 0.45 < 0.5
    assert summary["recognised"] == ["happiness_prototype", "source"]


def test_unbiased_hit_rates_separate_recognised_recipes_from_chance(study):
    study_dir, _, _ = study
    hu = _csv(study_dir, "hu.csv")
    top = hu[hu["level"] == "recipe"].set_index(["question", "recipe"])
    assert top.loc[("displayed", "happiness_prototype"), "above_chance"]
    assert not top.loc[("displayed", "suppressed_anger"), "above_chance"]
    assert not top.loc[("felt", "suppressed_anger"), "above_chance"]
    # two recipes share the displayed "joy": each one's Hu is its hit rate times the precision of "joy"
    joy = top.loc[("displayed", "happiness_prototype")]
    assert joy["hu"] == pytest.approx(joy["hit_rate"] * joy["precision"])
    assert top.loc[("displayed", "anger_masking_smile"), "precision"] == pytest.approx(joy["precision"])
    assert (top["hu"] <= top["hit_rate"] + 1e-12).all() and (top["n_raters"] == 36).all()
    assert {"recipe x face_group", "recipe x intensity x face_group x rater_group"} <= set(hu["level"])


def test_recognized_csv_gives_rates_and_verdicts_per_stimulus_cell_and_recipe(study, tmp_path):
    from complexface.data.imagefolder import RECOGNIZED_KEYS

    study_dir, _, _ = study
    recognized = _csv(study_dir, "recognized.csv")
    assert set(RECOGNIZED_KEYS) <= set(recognized.columns)
    assert set(recognized["level"]) == {"recipe", "cell", "stimulus"}
    stimuli = recognized[recognized["level"] == "stimulus"]
    assert len(stimuli) == 3 * 8 * 2 + 8 and (stimuli["displayed_n"] == 18).sum() == 48  # one list each
    chance = stimuli[stimuli["recipe"] == "suppressed_anger"]
    assert set(chance["verdict"]) == {"not recognised"}
    recipes = recognized[recognized["level"] == "recipe"].set_index("recipe")
    assert recipes.loc["anger_masking_smile", "verdict_reason"].startswith("felt 0.4")

    copy = tmp_path / "study"
    shutil.copytree(study_dir, copy, ignore=shutil.ignore_patterns("analysis"))
    summary = analyze(copy, {"verdict_question": "displayed", "min_ratings": 285})  # the baseline has 284
    assert summary["recognised"] == ["anger_masking_smile", "happiness_prototype"]
    assert summary["not_recognised"] == ["suppressed_anger"] and summary["too_few_ratings"] == ["source"]


def test_agreement_reports_alpha_with_the_category_skew(study):
    study_dir, _, summary = study
    agreement = _csv(study_dir, "agreement.csv")
    overall = agreement[agreement["subset"] == "all"].set_index("question")
    assert set(overall.index) == {"displayed", "felt", "genuineness"}
    assert 0.1 < overall.loc["displayed", "alpha"] < 0.9 and overall.loc["genuineness", "alpha"] > 0.3
    assert overall.loc["genuineness", "level_of_measurement"] == "interval"
    assert overall.loc["displayed", "top_category"] == "joy" and 0 < overall.loc["displayed", "evenness"] < 1
    assert overall.loc["displayed", "units"] == 56 and overall.loc["displayed", "raters"] == 36
    assert {"face_group", "rater_group"} <= set(agreement["subset"])
    saved = json.loads((study_dir / "analysis/agreement.json").read_text())
    assert saved[0]["alpha"] == pytest.approx(agreement["alpha"].iloc[0], abs=1e-4)
    assert summary["alpha"]["displayed/all/all"] == pytest.approx(overall.loc["displayed", "alpha"], abs=1e-4)


def test_mixed_model_finds_the_planted_face_group_bias_only(study):
    study_dir, _, summary = study
    contrasts = _csv(study_dir, "mixed_model.csv")
    assert len(contrasts) == 2 * 3 and set(contrasts["reference"]) == {"western"}
    flagged = contrasts[contrasts["finding"] != "no credible difference"]
    assert flagged[["question", "recipe", "face_group", "finding"]].values.tolist() == [
        ["felt", "anger_masking_smile", "east_asian", "lower"]]
    row = flagged.iloc[0]
    planted = np.log(0.3 / 0.7) - np.log(0.6 / 0.4)
    assert row["ci_low"] < planted < row["ci_high"] and row["p_lower"] > 0.99
    assert summary["bias"][0]["recipe"] == "anger_masking_smile"
    model = json.loads((study_dir / "analysis/mixed_model.json").read_text())
    assert model["felt"]["random_effects"] == ["face", "rater"] and "intensity_c" in model["felt"]["formula"]
    assert "Binomial Mixed GLM" in (study_dir / "analysis/mixed_model.txt").read_text()


def test_report_figures_and_wandb_run(study):
    study_dir, _, _ = study
    out = study_dir / "analysis"
    page = (out / "report.html").read_text()
    for title in ("Summary", "Recognition by recipe", "Unbiased hit rates", "Confusion matrices", "Agreement",
                  "Mixed-effects model", "Exclusions", "What the statistics mean"):
        assert f"<h2>{title}" in page
    assert page.count("data:image/png") == 2 + 2 * 3  # recognition per question, confusion per question x faces
    assert "careless0" in page and "anger_masking_smile is recognised lower on east_asian faces" in page
    for name in ("confusion_felt.png", "confusion_felt_east_asian.png", "recognition_displayed.png"):
        assert (out / name).stat().st_size > 10_000
    confusion = pd.read_csv(out / "confusion_displayed.csv").set_index("stimulus")
    assert list(confusion.columns) == OPTIONS and confusion.loc["happiness_prototype", "joy"] > 200
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))  # offline W&B run with the tables


def test_bad_studies_and_settings_are_refused(tmp_path):
    with pytest.raises(analysis.StudyAnalysisError, match="design.json is missing"):
        analyze(tmp_path, {})
    (tmp_path / "design.json").write_text(json.dumps({"options": OPTIONS, "chance": CHANCE}))
    with pytest.raises(analysis.StudyAnalysisError, match="no answers"):
        analyze(tmp_path, {})
    with pytest.raises(analysis.StudyAnalysisError, match="verdict_question"):
        analysis.settings({"verdict_question": "displayed_or_felt"})
    with pytest.warns(UserWarning, match="unknown setting"):
        assert analysis.settings({"min_rt": 100})["min_rt_ms"] == 300


def test_a_study_without_the_felt_question_rater_groups_or_a_target_among_the_options(tmp_path):
    simulate(tmp_path, n_raters=12, seed=3)
    answers = pd.read_csv(tmp_path / "export/answers.csv", dtype=str, keep_default_na=False)
    answers["felt_answer"] = ""
    answers["rater_group"] = ""
    answers.loc[answers["recipe"] == "suppressed_anger", "displayed_target"] = "mixed"  # not an answer option
    records = answers.to_dict(orient="records")
    for row in records:  # the JSON export: typed values
        row["attention_passed"] = {"true": True, "false": False}.get(row["attention_passed"])
        row["rt_ms"], row["intensity"] = float(row["rt_ms"]), float(row["intensity"])
    (tmp_path / "export/answers.csv").unlink()
    (tmp_path / "export/answers.json").write_text(json.dumps(records))
    summary = analyze(tmp_path, {})
    assert summary["questions"] == ["displayed"] and summary["raters_excluded"] == 5
    assert any("did not ask the felt emotion" in note for note in summary["notes"])
    table = _csv(tmp_path, "recognition.csv")
    assert not table["level"].str.contains("rater_group").any() and set(table["question"]) == {"displayed"}
    mixed = table[(table["recipe"] == "suppressed_anger") & (table["level"] == "recipe")].iloc[0]
    assert mixed["rate"] == 0 and mixed["chance"] == 0 and np.isnan(mixed["p"]) and not mixed["above_chance"]
    assert "suppressed_anger" not in set(_csv(tmp_path, "mixed_model.csv")["recipe"])
    recognized = _csv(tmp_path, "recognized.csv")
    assert (recognized["felt_n"] == 0).all() and recognized["verdict_reason"].str.startswith("displayed").all()
    assert summary["not_recognised"] == ["suppressed_anger"]
    assert (tmp_path / "analysis/report.html").read_text().count("data:image/png") == 1 + 3

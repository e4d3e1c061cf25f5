"""The complex-expression catalog, catalog sweeps and the imagefolder dataset builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import edit
from complexface.au import AUS, EDITABLE, AUError, split_side
from complexface.data.imagefolder import ImageFolderBuilder, split_identities
from complexface.expressions import CATALOG, CatalogError, load_catalog, prototypes
from complexface.sweep import catalog_plan
from tests.conftest import compose_config

FAST = ["workers=1", "progress=false", "grid_thumb=48", "logger=none"]
FACES = "faceset.only=[001.jpg,006.jpg,014.jpg,021.jpg,047.jpg,050.jpg,072.jpg,080.jpg]"


def test_catalog_has_sourced_bilingual_recipes_including_the_brief_target():
    catalog = load_catalog()
    assert len(catalog) >= 15
    target = catalog["anger_masking_smile"]
    assert (target.felt, target.displayed) == ("anger", "joy")
    assert "smiling on the surface while angry inside" in target.captions_en
    assert sum(r.complex for r in catalog.values()) >= 10
    for recipe in catalog.values():
        assert {split_side(au)[0] for au in recipe.aus.values} <= set(EDITABLE)
        assert all(not AUS[au].editable for au in recipe.needs)  # approximated units are the non-editable ones
        assert recipe.citation and len(recipe.captions_en) >= 3 and len(recipe.captions_ja) >= 3
        assert all(any("\u3040" <= ch <= "\u9fff" for ch in c) for c in recipe.captions_ja)  # Japanese script


def test_every_basic_emotion_has_a_strong_prototype_and_contempt_is_one_sided(tmp_path):
    catalog = load_catalog()
    protos = prototypes(catalog)
    assert set(protos) == {"joy", "sadness", "surprise", "anger", "disgust", "fear", "contempt"}
    for rid in protos.values():
        assert all(0 < v <= 5 for v in catalog[rid].aus.values.values()) and max(catalog[rid].aus.values.values()) >= 3
    contempt = catalog["contempt_prototype"].aus
    assert contempt.values == {"AU12L": 4} and contempt.sided and contempt.vector()[EDITABLE.index("AU12")] == 2
    assert catalog_plan(only=["contempt_prototype"]).row_slugs == ["contempt_prototype"]
    assert catalog["anger_prototype"].needs.keys() == {"AU7", "AU10", "AU23"}
    assert "AU10" in catalog["disgust_prototype"].needs
    good = yaml.safe_load(CATALOG.read_text())["recipes"][0]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"recipes": [{**good, "aus": {"AU12R": 2, "AU6": 1}}]}, allow_unicode=True))
    assert load_catalog(path)[good["id"]].aus.values == {"AU6": 1, "AU12R": 2}


def test_an_editor_without_sides_skips_one_sided_recipes_of_the_whole_catalog_only():
    with pytest.warns(UserWarning, match="skipping the one-sided recipe"):
        job, _ = edit.build(compose_config("edit", ["editor=closed_loop", "expression=catalog", *FAST]), Path("unused"))
    assert "contempt_prototype" not in job.plan.rows and "anger_prototype" in job.plan.rows
    assert len(job.plan.rows) == len(load_catalog()) - 1 and job.plan.recipes == load_catalog()
    with pytest.raises(AUError, match="closed_loop editor has no per-side AUs"):
        edit.build(compose_config("edit", ["editor=closed_loop", "expression=catalog",
                                           "expression.only=[contempt_prototype]", *FAST]), Path("unused"))


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"aus": {"AU3": 2}}, AUError, "recipe 'bad': unknown AU 'AU3'"),
    ({"aus": {"AU7": 2}}, AUError, "AU7 (lid tightener) is a FACS AU but not editable"),
    ({"citation": ""}, CatalogError, "'citation' is missing"),
    ({"captions_ja": []}, CatalogError, "no captions_ja"),
    ({"needs": {"AU12": "x"}}, CatalogError, "'needs' lists 'AU12'"),
    ({"needs": {"AU23": ""}}, CatalogError, "say how the recipe approximates AU23"),
    ({"aus": {}}, CatalogError, "'aus' is empty"),
])
def test_bad_recipes_are_rejected_with_the_reason(tmp_path, change, error, message):
    good = yaml.safe_load(CATALOG.read_text())["recipes"][0]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"recipes": [{**good, "id": "bad", **change}]}, allow_unicode=True))
    with pytest.raises(error) as info:
        load_catalog(path)
    assert message in str(info.value)


def test_duplicate_ids_and_unknown_recipe_ids(tmp_path):
    good = yaml.safe_load(CATALOG.read_text())["recipes"][0]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"recipes": [good, good]}, allow_unicode=True))
    with pytest.raises(CatalogError, match="used twice"):
        load_catalog(path)
    with pytest.raises(CatalogError, match="unknown recipe id"):
        catalog_plan(only=["no_such_recipe"])


def test_catalog_plan_rows_are_recipes_scaled():
    plan = catalog_plan(only=["felt_smile", "anger_masking_smile"], scales=[0.5, 1])
    assert plan.row_labels == ["felt_smile", "anger_masking_smile"]
    assert [e.label for e in plan.grid[1]] == ["AU4+AU12+AU17=1+1.5+0.5", "AU4+AU12+AU17=2+3+1"]
    assert plan.placements(plan.grid[1][1]) == [{"row": "anger_masking_smile", "scale": 1.0}]


def test_split_identities_is_stratified_deterministic_and_fills_every_split():
    groups = {f"a{i}": "A" for i in range(8)} | {f"b{i}": "B" for i in range(8)} | {"c0": "C", "c1": "C"}
    fractions = {"train": 0.7, "validation": 0.15, "test": 0.15}
    first = split_identities(groups, fractions, seed=3)
    assert first == split_identities(groups, fractions, seed=3)
    assert set(first.values()) == {"train", "validation", "test"}
    for group in "AB":
        members = [s for f, s in first.items() if f.startswith(group.lower())]
        assert members.count("train") == 6 and members.count("validation") == 1 and members.count("test") == 1
    assert first != split_identities(groups, fractions, seed=4)


@pytest.fixture(scope="module")
def catalog_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("catalog_run")
    cfg = compose_config("edit", [FACES, "expression=catalog", "dataset=imagefolder", *FAST,
                                  "expression.only=[anger_masking_smile,felt_smile,contempt_prototype]"])
    summary = edit.edit(cfg, run_dir)
    assert summary["failed"] == 0
    return run_dir


def _metadata(folder: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(folder.glob("*/metadata.jsonl"))}


def test_catalog_sweep_writes_recipe_grids_and_the_dataset(catalog_run):
    assert (catalog_run / "grids/groups/east_asian/anger_masking_smile.jpg").exists()
    assert len(list((catalog_run / "grids/compare").glob("*.jpg"))) == 8  # one comparison per face
    rows = {s: [json.loads(line) for line in (catalog_run / "dataset" / s / "metadata.jsonl").read_text().splitlines()]
            for s in ("train", "validation", "test")}
    faces = {s: {r["face"] for r in rs} for s, rs in rows.items()}
    assert all(faces.values()) and not (faces["train"] & faces["validation"] or faces["train"] & faces["test"]
                                        or faces["validation"] & faces["test"])
    every = [r for rs in rows.values() for r in rs]
    assert len(every) == 8 * 4  # 8 faces x (3 recipes + the source)
    smile = next(r for r in every if r["recipe"] == "anger_masking_smile")
    assert smile["aus"] == [0, 0, 2, 0, 0, 0, 3, 0, 1, 0, 0, 0]
    assert (smile["felt"], smile["displayed"]) == ("anger", "joy")
    assert smile["text"] == smile["text_en"] and smile["text_ja"] and smile["backend"] == "warp"
    assert len(smile["measured"]) == 12 and smile["measured"][6] > 1  # measured AU12 went up
    contempt = next(r for r in every if r["recipe"] == "contempt_prototype")
    assert contempt["aus"] == [0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0]  # AU12L=4: one side counts half
    source = next(r for r in every if r["recipe"] == "as_photographed")
    assert source["aus"] == [0] * 12 and source["measured"] is None
    for split, entries in rows.items():
        for entry in entries:
            assert (catalog_run / "dataset" / split / entry["file_name"]).exists()


def test_datasets_library_reads_it(catalog_run):
    import datasets

    data = datasets.load_dataset("imagefolder", data_dir=str(catalog_run / "dataset"))
    assert set(data) == {"train", "validation", "test"}
    assert {"image", "text", "text_ja", "aus", "recipe", "felt", "displayed", "scale", "face", "group"} <= set(
        data["train"].column_names)
    assert data["train"][0]["image"].size == (512, 512)


def test_rebuild_is_idempotent_resumes_and_is_seeded(catalog_run, tmp_path):
    dataset = catalog_run / "dataset"
    before = _metadata(dataset)
    image = next((dataset / "train").glob("*.png"))
    stamp = image.stat().st_mtime_ns
    ImageFolderBuilder().build(catalog_run)
    assert _metadata(dataset) == before and image.stat().st_mtime_ns == stamp
    image.unlink()  # an interrupted build: a missing image and a missing metadata file
    (dataset / "test" / "metadata.jsonl").unlink()
    ImageFolderBuilder().build(catalog_run)
    assert _metadata(dataset) == before and image.exists()
    other = ImageFolderBuilder(seed=1, folder="dataset_seed1").build(catalog_run)
    assert other["faces"] != ImageFolderBuilder().build(catalog_run)["faces"] or _metadata(
        catalog_run / "dataset_seed1") != before


def test_filter_drops_edits_that_miss_their_recipe(catalog_run):
    result = ImageFolderBuilder(min_response=50.0, folder="dataset_strict").build(catalog_run)
    assert result["dropped"] == 24 and sum(result["rows"].values()) == 8  # only the source rows remain
    dropped = (catalog_run / "dataset_strict/dropped.jsonl").read_text().splitlines()
    reasons = [json.loads(line)["reason"] for line in dropped]
    assert all("measured" in r and "requested" in r for r in reasons)


def test_builder_refuses_a_run_without_catalog_edits(tmp_path):
    cfg = compose_config("edit", ["faceset.limit=1", "expression=custom", "expression.edits=[AU12:2]", "measure=off",
                                  *FAST])
    edit.edit(cfg, tmp_path)
    with pytest.raises(CatalogError, match="no finished catalog edits"):
        ImageFolderBuilder().build(tmp_path)


def test_complex_recipes_are_compared_with_their_emotions_prototypes(tmp_path):
    from PIL import Image

    from complexface.report.grids import comparison_rows
    from complexface.runs import Manifest
    from complexface.sweep import EditPlan

    only = ["anger_masking_smile", "bittersweet", "embarrassed_smile", "suppressed_sadness", "felt_smile",
            "anger_prototype", "happiness_prototype"]
    cfg = compose_config("edit", ["faceset.only=[001.jpg]", "expression=catalog", f"expression.only=[{','.join(only)}]",
                                  "expression.scales=[0.5,1]", "measure=off", *FAST])
    summary = edit.edit(cfg, tmp_path)
    assert summary["failed"] == 0 and summary["n_compare_grids"] == 1
    plan = catalog_plan(only=only, scales=[0.5, 1])
    crops = {r.label: tmp_path / r.crop for r in Manifest(tmp_path)}
    source = tmp_path / next(iter(Manifest(tmp_path))).source_crop
    rows = comparison_rows(plan, {rid: crops[e[1].label] for rid, e in zip(plan.rows, plan.grid, strict=True)}, source)
    layout = {rid: [(p.label, p.note if p.image is None else p.image.name) for p in panels] for rid, panels in rows}
    at = {rid: crops[plan.recipes[rid].aus.label].name for rid in only}  # the edits at scale 1
    assert list(layout) == ["anger_masking_smile", "bittersweet", "embarrassed_smile", "suppressed_sadness"]
    assert layout["anger_masking_smile"] == [
        ("source", source.name), ("recipe", at["anger_masking_smile"]),
        ("felt: anger\nanger_prototype", at["anger_prototype"]),
        ("displayed: joy\nhappiness_prototype", at["happiness_prototype"])]
    assert layout["bittersweet"][2:] == [("felt: joy\nhappiness_prototype", at["happiness_prototype"]),
                                         ("felt: sadness\nsadness_prototype", "not in run"),
                                         ("displayed: mixed", "no prototype")]
    assert layout["embarrassed_smile"][2] == ("felt: embarrassment", "no prototype")
    assert layout["suppressed_sadness"][3] == ("displayed: neutral\n(source)", source.name)
    with Image.open(tmp_path / "grids/compare/001.jpg") as grid:  # 4 rows, up to 5 panels of 64 px + captions
        assert grid.width >= 90 + 5 * 64 and 4 * (64 + 20) < grid.height < 4 * (64 + 60) + 40
    assert not comparison_rows(EditPlan(["AU12=3"]), {}, source)  # not a catalog plan: no comparison


def _record(edit: dict[str, float], deltas: dict[str, float]):
    from complexface.runs import OK, Record

    return Record(face_file="x.jpg", face_id="x", group="g", edit=edit, label="edit", status=OK,
                  extra={"metrics": {"status": OK, **{f"d_{au}": v for au, v in deltas.items()}}})


def test_min_response_judges_every_requested_au_also_the_ones_below_one():
    from complexface.data.imagefolder import _missed

    assert _missed(_record({"AU12": 2, "AU17": 0.5}, {"AU12": 1.8, "AU17": 0.02}), 0.25) == (
        "AU17 measured 0.02 for a requested 0.5 (< 0.25 of it)")  # was skipped: requests below 1 went unjudged
    assert _missed(_record({"AU12": 2, "AU17": 0.5}, {"AU12": 1.8, "AU17": 0.2}), 0.25) == ""
    assert _missed(_record({"AU15": -0.5}, {"AU15": 0.1}), 0.25).startswith("AU15 measured 0.10")  # wrong way
    assert _missed(_record({"AU15": -0.5}, {"AU15": -0.3}), 0.25) == ""
    assert _missed(_record({"AU12L": 0.5}, {"AU12L": 0.0}), 0.25).startswith("AU12L")  # one side, small
    assert _missed(_record({"AU12": 0.5}, {}), 0.25) == ""  # not measured: not judged
    assert _missed(_record({"AU12": 0.5}, {"AU12": float("nan")}), 0.25) == ""


def _built_files(folder: Path) -> tuple[set[str], set[str]]:
    """(files in the split folders, files the metadata lists plus the metadata files)."""
    present = {str(p.relative_to(folder)) for p in folder.glob("*/*")}
    listed = set()
    for meta in folder.glob("*/metadata.jsonl"):
        split = meta.parent.name
        listed |= {f"{split}/metadata.jsonl"} | {
            f"{split}/{json.loads(line)['file_name']}" for line in meta.read_text().splitlines()}
    return present, listed


def test_rebuild_with_another_seed_or_filter_removes_the_previous_builds_files(catalog_run):
    folder = catalog_run / "dataset_rebuilt"
    first = ImageFolderBuilder(folder=folder.name).build(catalog_run)
    assert first["stale_removed"] == 0
    (folder / "train" / "notes.txt").write_text("not the builder's: kept")
    (folder / "test" / ".001__felt_smile__1.png.x1.tmp").write_bytes(b"half")  # an interrupted write
    other = ImageFolderBuilder(seed=1, folder=folder.name).build(catalog_run)
    assert other["faces"] != first["faces"]  # faces moved between splits ...
    present, listed = _built_files(folder)
    assert present == listed | {"train/notes.txt"} and other["stale_removed"] > 1  # ... and left nothing behind
    build = json.loads((folder / "build.json").read_text())
    assert set(build["files"]) == listed and build["settings"]["seed"] == 1 and build["rows"] == other["rows"]
    strict = ImageFolderBuilder(seed=1, min_response=50.0, folder=folder.name).build(catalog_run)
    present, listed = _built_files(folder)
    assert present == listed | {"train/notes.txt"} and strict["stale_removed"] == strict["dropped"] == 24
    assert all("__source" in f or f.endswith(("metadata.jsonl", "notes.txt")) for f in present)
    ImageFolderBuilder(seed=1, min_response=50.0, include_sources=False, folder=folder.name).build(catalog_run)
    assert _built_files(folder)[0] == {"train/notes.txt"} and not (folder / "test").exists()  # empty split: gone


def _write_recognized(path: Path, run_dir: Path, felt, displayed=lambda group, recipe: 0.8, skip=(), cells=()):
    """A recognized.csv (complexface.study.analysis) for the run's edits: rates from felt(group, recipe) and
    displayed(group, recipe), n = 20 each; the (face, recipe) pairs in ``skip`` left out (not in the study)."""
    import pandas as pd

    from complexface.runs import Manifest

    rows = []
    for record in Manifest(run_dir):
        for place in record.extra.get("placements", []):
            if (record.face_id, place["row"]) in skip:
                continue
            rows.append({"level": "stimulus", "stimulus": f"s{len(rows)}", "face": record.face_id,
                         "recipe": place["row"], "intensity": place["scale"], "face_group": record.group,
                         "displayed_n": 20, "displayed_rate": displayed(record.group, place["row"]), "felt_n": 20,
                         "felt_rate": felt(record.group, place["row"]), "verdict": "recognised"})
    for recipe, group, felt_rate in cells:
        rows.append({"level": "cell", "stimulus": "", "face": "", "recipe": recipe, "intensity": "1.0",
                     "face_group": group, "displayed_n": 80, "displayed_rate": 0.8, "felt_n": 80,
                     "felt_rate": felt_rate, "verdict": ""})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for meta in sorted(folder.glob("*/metadata.jsonl")) for line in meta.read_text().splitlines()]


def test_human_verdicts_keep_only_the_edits_raters_recognised(catalog_run, tmp_path):
    from complexface.runs import Manifest

    groups = {r.face_id: r.group for r in Manifest(catalog_run)}
    east = sorted(f for f, g in groups.items() if g == "east_asian")
    unseen = [(face, "contempt_prototype") for face in sorted(groups)[:2]]  # the study did not show these
    assert groups[unseen[0][0]] != groups[unseen[1][0]]
    rates = {"felt_smile": 0.9, "contempt_prototype": 0.6}
    path = _write_recognized(tmp_path / "recognized.csv", catalog_run, skip=unseen,
                             felt=lambda g, r: rates.get(r, 0.3 if g == "east_asian" else 0.7),
                             cells=[("contempt_prototype", groups[unseen[0][0]], 0.8),
                                    ("contempt_prototype", groups[unseen[1][0]], 0.2)])
    result = ImageFolderBuilder(recognized=str(path), min_recognition=0.5, folder="dataset_human").build(catalog_run)
    assert result["dropped_by"] == {"min_response": 0, "recognition": len(east), "unrated": 2}
    rows = _rows(catalog_run / "dataset_human")
    edited = [r for r in rows if r["recipe"] != "as_photographed"]
    assert len(edited) == 24 - len(east) - 2 and len(rows) == len(edited) + 8  # the sources are never filtered
    assert not any(r["recipe"] == "anger_masking_smile" and r["face"] in east for r in edited)
    assert {r["human_felt"] for r in edited if r["recipe"] == "felt_smile"} == {0.9}
    assert all(r["human_felt"] is None for r in rows if r["recipe"] == "as_photographed")
    dropped = [json.loads(line) for line in (catalog_run / "dataset_human/dropped.jsonl").read_text().splitlines()]
    reasons = {(d["face"], d["recipe"]): (d["rule"], d["reason"]) for d in dropped}
    assert reasons[(east[0], "anger_masking_smile")] == (
        "recognition", "human recognition (stimulus): felt 0.30 < 0.5 (n=20)")
    assert reasons[unseen[0]] == ("unrated", "not rated in recognized.csv")

    keep = ImageFolderBuilder(recognized=str(path), unrated="keep", folder="dataset_human").build(catalog_run)
    assert keep["unrated_kept"] == 2 and keep["dropped"] == len(east)
    cell = ImageFolderBuilder(recognized=str(path), unrated="cell", folder="dataset_human").build(catalog_run)
    assert cell["dropped_by"] == {"min_response": 0, "recognition": len(east) + 1, "unrated": 0}  # by 0.8 / 0.2
    displayed = ImageFolderBuilder(recognized=str(path), recognition_question="displayed",
                                   folder="dataset_human").build(catalog_run)
    assert displayed["dropped_by"] == {"min_response": 0, "recognition": 0, "unrated": 2}
    assert ImageFolderBuilder(recognized=str(path), recognition_question="either",
                              folder="dataset_human").build(catalog_run)["dropped_by"]["recognition"] == 0
    both = ImageFolderBuilder(recognized=str(path), recognition_question="both", min_recognition=0.75,
                              folder="dataset_human").build(catalog_run)  # displayed 0.8, felt 0.9 / 0.6 / 0.3|0.7
    assert both["dropped_by"]["recognition"] == 8 + 6  # anger_masking everywhere, contempt where rated
    present, listed = _built_files(catalog_run / "dataset_human")
    assert present == listed


def test_human_verdict_settings_come_from_the_dataset_config_and_bad_files_are_refused(catalog_run, tmp_path):
    from hydra.utils import instantiate

    path = _write_recognized(tmp_path / "recognized.csv", catalog_run, felt=lambda g, r: 0.9 if r == "felt_smile" else 0.4)
    cfg = compose_config("edit", ["dataset=imagefolder", f"dataset.recognized={path}", "dataset.min_recognition=0.8",
                                  "+dataset.builder.folder=dataset_hydra"])
    result = instantiate(cfg.dataset.builder, _convert_="all").build(catalog_run)
    assert result["dropped_by"]["recognition"] == 16 and sum(result["rows"].values()) == 8 + 8
    silent = _write_recognized(tmp_path / "no_felt.csv", catalog_run, felt=lambda g, r: 0.5)
    silent.write_text(silent.read_text().replace(",20,0.5,", ",0,,"))  # the felt question was never asked
    with pytest.raises(CatalogError, match="no felt-emotion ratings of any stimulus.*recognition_question=displayed"):
        ImageFolderBuilder(recognized=str(silent), folder="dataset_hydra").build(catalog_run)
    with pytest.raises(CatalogError, match="does not exist"):
        ImageFolderBuilder(recognized=str(tmp_path / "missing.csv")).build(catalog_run)
    (tmp_path / "other.csv").write_text("face,recipe\nx,y\n")
    with pytest.raises(CatalogError, match="no column level"):
        ImageFolderBuilder(recognized=str(tmp_path / "other.csv")).build(catalog_run)
    with pytest.raises(CatalogError, match="recognition_question must be one of"):
        ImageFolderBuilder(recognition_question="hidden")

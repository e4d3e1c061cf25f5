"""The complex-expression catalog, catalog sweeps and the imagefolder dataset builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import edit
from complexface.au import AUS, EDITABLE, AUError
from complexface.data.imagefolder import ImageFolderBuilder, split_identities
from complexface.expressions import CATALOG, CatalogError, load_catalog
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
        assert set(recipe.aus.values) <= set(EDITABLE)
        assert all(not AUS[au].editable for au in recipe.needs)  # approximated units are the non-editable ones
        assert recipe.citation and len(recipe.captions_en) >= 3 and len(recipe.captions_ja) >= 3
        assert all(any("\u3040" <= ch <= "\u9fff" for ch in c) for c in recipe.captions_ja)  # Japanese script


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
    cfg = compose_config("edit", [FACES, "expression=catalog", "expression.only=[anger_masking_smile,felt_smile]",
                        "dataset=imagefolder", *FAST])
    summary = edit.edit(cfg, run_dir)
    assert summary["failed"] == 0
    return run_dir


def _metadata(folder: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(folder.glob("*/metadata.jsonl"))}


def test_catalog_sweep_writes_recipe_grids_and_the_dataset(catalog_run):
    assert (catalog_run / "grids/groups/east_asian/anger_masking_smile.jpg").exists()
    rows = {s: [json.loads(line) for line in (catalog_run / "dataset" / s / "metadata.jsonl").read_text().splitlines()]
            for s in ("train", "validation", "test")}
    faces = {s: {r["face"] for r in rs} for s, rs in rows.items()}
    assert all(faces.values()) and not (faces["train"] & faces["validation"] or faces["train"] & faces["test"]
                                        or faces["validation"] & faces["test"])
    every = [r for rs in rows.values() for r in rs]
    assert len(every) == 8 * 3  # 8 faces x (2 recipes + the source)
    smile = next(r for r in every if r["recipe"] == "anger_masking_smile")
    assert smile["aus"] == [0, 0, 2, 0, 0, 0, 3, 0, 1, 0, 0, 0] and (smile["felt"], smile["displayed"]) == ("anger", "joy")
    assert smile["text"] == smile["text_en"] and smile["text_ja"] and smile["backend"] == "warp"
    assert len(smile["measured"]) == 12 and smile["measured"][6] > 1  # measured AU12 went up
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
    assert result["dropped"] == 16 and sum(result["rows"].values()) == 8  # only the source rows remain
    reasons = [json.loads(line)["reason"] for line in (catalog_run / "dataset_strict/dropped.jsonl").read_text().splitlines()]
    assert all("measured" in r and "requested" in r for r in reasons)


def test_builder_refuses_a_run_without_catalog_edits(tmp_path):
    cfg = compose_config("edit", ["faceset.limit=1", "expression=custom", "expression.edits=[AU12:2]", "measure=off", *FAST])
    edit.edit(cfg, tmp_path)
    with pytest.raises(CatalogError, match="no finished catalog edits"):
        ImageFolderBuilder().build(tmp_path)

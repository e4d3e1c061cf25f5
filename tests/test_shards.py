"""Shards of a sweep without a cluster: run.json, the refusal to mix shards, the checks and evaluate.py's merge."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import edit
import evaluate
from complexface.runs import Manifest, Record, RunDirError, RunInfo
from complexface.shards import MultirunError, find_runs, merged_records, shard_problems
from tests.conftest import compose_config

FACES = "faceset.only=[001.jpg,006.jpg,039.jpg,047.jpg]"
EDITS = [FACES, "expression=custom", "expression.edits=[AU4:3,AU12:3]", "workers=1", "progress=false",
         "logger=none", "grid_thumb=64"]


def fake_run(run_dir, shard, num_shards, faces, done, complete=True, edits=("AU4=3",)) -> None:
    """A run dir as edit.py leaves it: run.json and manifest records for the ``done`` faces."""
    RunInfo(list(faces), list(edits), shard, num_shards, complete).save(run_dir)
    Manifest(run_dir).add(Record(f"{f}.jpg", f, "g", {"AU4": 3.0}, e, "ok") for f in done for e in edits)


def test_problems_name_missing_and_unfinished_shards(tmp_path):
    fake_run(tmp_path / "shard0", 0, 3, ["a", "b"], ["a", "b"])
    fake_run(tmp_path / "shard2", 2, 3, ["c", "d"], ["c"], complete=False)
    runs = find_runs(tmp_path)
    assert [r.info.shard for r in runs] == [0, 2] and [r.complete for r in runs] == [True, False]
    assert shard_problems(runs) == ["shard 1 of 3 is missing (no run dir)",
                                    f"shard 2 ({tmp_path / 'shard2'}) is incomplete: 1 of 2 items; resubmit it to "
                                    f"finish"]
    assert len(merged_records(runs)) == 3


def test_a_run_marked_complete_with_items_missing_is_incomplete(tmp_path):
    fake_run(tmp_path / "0", 0, 1, ["a", "b"], ["a"], complete=True)
    (run,) = find_runs(tmp_path)
    assert not run.complete and run.done == 1


@pytest.mark.parametrize("second, message", [
    ((1, 3), "different ways (num_shards [2, 3])"),
    ((0, 2), "shard 0 is in both"),
])
def test_runs_of_different_splits_or_one_shard_twice_are_refused(tmp_path, second, message):
    fake_run(tmp_path / "x", 0, 2, ["a"], ["a"])
    fake_run(tmp_path / "y", *second, ["b"], ["b"])
    with pytest.raises(MultirunError, match=re.escape(message)):
        shard_problems(find_runs(tmp_path))


def test_overlapping_runs_and_empty_dirs_are_refused(tmp_path):
    fake_run(tmp_path / "x", None, 1, ["a"], ["a"])
    fake_run(tmp_path / "y", None, 1, ["a"], ["a"])
    with pytest.raises(MultirunError, match="face a edit AU4=3 is in both"):
        merged_records(find_runs(tmp_path))
    with pytest.raises(MultirunError, match="no edit runs"):
        find_runs(tmp_path / "x" / "empty")


def test_a_run_dir_holding_another_shard_is_refused_before_any_work(tmp_path):
    RunInfo(["a"], ["AU4=3"], 0, 4).start(tmp_path)
    with pytest.raises(RunDirError, match="holds shard 0 of 4, not shard 2 of 4"):
        RunInfo(["b"], ["AU4=3"], 2, 4).start(tmp_path)
    RunInfo(["a"], ["AU4=3"], 0, 4).start(tmp_path)  # the same shard resumes


def test_evaluate_merges_shard_runs_into_the_single_runs_table(tmp_path):
    for shard in (0, 1):
        edit.edit(compose_config("edit", [*EDITS, f"faceset.shard={shard}", "faceset.num_shards=2"]),
                  tmp_path / "multirun" / f"shard{shard}")
    edit.edit(compose_config("edit", EDITS), tmp_path / "single")
    written = evaluate.evaluate(compose_config("evaluate", [f"input={tmp_path / 'multirun'}", "logger=none",
                                                            "progress=false"]), tmp_path / "merged")
    merged, single = pd.read_csv(written["metrics"]), pd.read_csv(tmp_path / "single" / "metrics.csv")
    assert len(merged) == 8
    pd.testing.assert_frame_equal(merged, single)
    runs = pd.read_csv(tmp_path / "merged" / "runs.csv")
    assert runs["shard"].tolist() == [0, 1] and runs["complete"].all() and runs["faces"].sum() == 4
    report = written["report"].read_text()
    assert "Runs merged" in report and "every run complete" in report and "shard1 / " in report

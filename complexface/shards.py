"""The runs of one multirun (the shards of a face set, or any sweep of edit runs): found, checked and merged.

Each edit run dir holds ``run.json`` (its expected faces x edits, its shard, whether it finished) and its manifest;
a Hydra multirun dir holds one such run dir per job. Merging reads them without touching them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from complexface.errors import UserError
from complexface.runs import MANIFEST, OK, RUN_INFO, Manifest, Record, RunInfo


class MultirunError(UserError, ValueError):
    """Run dirs that cannot be merged (no runs, shards of different splits, one item in two runs)."""


@dataclass
class ShardRun:
    """One edit run of a multirun: its dir, what it was asked to make and its manifest."""

    run_dir: Path
    info: RunInfo | None
    manifest: Manifest

    @property
    def expected(self) -> set[tuple[str, str]]:
        """The (face, edit) items the run was asked to make (empty when the run predates ``run.json``)."""
        return {(f, e) for f in self.info.faces for e in self.info.edits} if self.info else set()

    @property
    def done(self) -> int:
        """Expected items with a record (edited or failed: both are finished work)."""
        return len(self.expected & set(self.manifest.records))

    @property
    def complete(self) -> bool:
        return bool(self.info and self.info.complete and self.done == len(self.expected))


def find_runs(multirun_dir: str | Path) -> list[ShardRun]:
    """The edit runs below ``multirun_dir`` (each a dir with ``run.json`` or a manifest), in shard order."""
    root = Path(multirun_dir)
    dirs = sorted(Path(d) for d, _, files in os.walk(root) if RUN_INFO in files or MANIFEST in files)
    runs = [ShardRun(d, RunInfo.load(d), Manifest(d)) for d in dirs]
    if not runs:
        raise MultirunError(f"no edit runs in {root}: give an edit.py run dir or multirun dir")
    return sorted(runs, key=lambda r: (r.info is None or r.info.shard is None, r.info.shard if r.info else 0,
                                       str(r.run_dir)))


def shard_problems(runs: list[ShardRun]) -> list[str]:
    """What is missing or unfinished: shards never run, runs killed or with items left (resubmit those).

    Raises ``MultirunError`` for runs that are not parts of one split (different ``num_shards``, a shard twice)."""
    sharded = [r for r in runs if r.info and r.info.num_shards > 1]
    problems = []
    if sharded:
        counts = {r.info.num_shards for r in sharded}
        if len(counts) > 1:
            raise MultirunError(f"the runs split the face set in different ways (num_shards {sorted(counts)}): "
                                f"merge the runs of one split")
        (count,) = counts
        seen: dict[int, Path] = {}
        for r in sharded:
            if r.info.shard in seen:
                raise MultirunError(f"shard {r.info.shard} is in both {seen[r.info.shard]} and {r.run_dir}")
            seen[r.info.shard] = r.run_dir
        problems += [f"shard {i} of {count} is missing (no run dir)" for i in range(count) if i not in seen]
    for r in runs:
        if r.info is None:
            continue
        name = f"shard {r.info.shard} ({r.run_dir})" if r.info.shard is not None else str(r.run_dir)
        if not r.complete:
            problems.append(f"{name} is incomplete: {r.done} of {len(r.expected)} items; resubmit it to finish")
    return problems


def shard_table(runs: list[ShardRun]) -> pd.DataFrame:
    """One row per run: shard, dir, expected and finished items, edited OK, complete."""
    return pd.DataFrame([{"shard": r.info.shard if r.info else None, "run": r.run_dir.name,
                          "faces": len(r.info.faces) if r.info else None, "expected": len(r.expected),
                          "finished": r.done, "ok": sum(rec.status == OK for rec in r.manifest),
                          "complete": r.complete} for r in runs])


def merged_records(runs: list[ShardRun]) -> list[Record]:
    """Every record of every run; an item (face, edit, editor) made by two runs is refused."""
    owner: dict[tuple[str, str, str], Path] = {}
    records = []
    for r in runs:
        for record in r.manifest:
            key = (*record.key, record.extra.get("editor", ""))
            if key in owner:
                raise MultirunError(f"face {key[0]} edit {key[1]} is in both {owner[key]} and {r.run_dir}: "
                                    f"the runs overlap; evaluate them one at a time")
            owner[key] = r.run_dir
            records.append(record)
    return records

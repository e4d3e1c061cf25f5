"""Run directories: the manifest of face x edit records, resume and end-of-run summaries."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from complexface.atomic import write_text
from complexface.errors import UserError

MANIFEST = "manifest.jsonl"
RUN_INFO = "run.json"
OK, FAILED = "ok", "failed"


@dataclass
class Record:
    """One face x edit outcome, as a line of ``manifest.jsonl``. Paths are relative to the run dir."""

    face_file: str
    face_id: str
    group: str
    edit: dict[str, float]
    label: str
    status: str
    reason: str = ""
    source_crop: str = ""
    crop: str = ""
    photo: str = ""
    face_index: int = 0
    n_faces: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.face_id, self.label


def _ends_line(path: Path) -> bool:
    """Whether a non-empty file's last byte is a newline."""
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


class Manifest:
    """Append-only JSON-lines manifest; the last record of a (face, edit) key wins.

    Each line is flushed and fsynced, so a killed run loses at most the line being written;
    a torn last line is ignored on reading and ended before the next record is added (reading never writes).
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / MANIFEST
        self.records: dict[tuple[str, str], Record] = {}
        if self.path.exists():
            for record in self._read(self.path):
                self.records[record.key] = record

    @staticmethod
    def _read(path: Path) -> Iterator[Record]:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    yield Record(**json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    continue

    def done(self, face_id: str, label: str) -> bool:
        """Whether this item finished OK earlier and its outputs are still on disk."""
        record = self.records.get((face_id, label))
        return bool(record and record.status == OK and all(
            (self.run_dir / p).exists() for p in (record.crop, record.photo) if p))

    def add(self, records: Iterable[Record]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            if handle.tell() and not _ends_line(self.path):  # a run killed mid-write: end its partial line
                handle.write("\n")
            for record in records:
                handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
                self.records[record.key] = record
            handle.flush()
            os.fsync(handle.fileno())

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records.values())

    def summary(self) -> dict:
        """Counts of items that were edited (and measured, where measured) without a problem, of failed
        items (editing or measuring failed: ``measure_failed`` says how many of them were measured in
        vain), and the failure reasons with the faces they hit."""
        reasons: dict[str, set[str]] = {}
        measure_failed = 0
        for r in self:
            metrics = r.extra.get("metrics", {})
            if r.status == FAILED or metrics.get("status") == FAILED:
                reasons.setdefault(r.reason or metrics.get("reason", ""), set()).add(r.face_file)
                measure_failed += r.status != FAILED
        failed = sum(1 for r in self if r.status == FAILED) + measure_failed
        return {
            "items": len(self.records), "ok": len(self.records) - failed, "failed": failed,
            "measure_failed": measure_failed,
            "failures": [{"reason": k, "faces": sorted(v)} for k, v in sorted(reasons.items())],
        }

    def write_summary(self) -> dict:
        summary = self.summary()
        write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        return summary


class RunDirError(UserError, ValueError):
    """A run dir that holds another part of a sweep than the one asked for."""


@dataclass
class RunInfo:
    """What a run dir was asked to make (``run.json``): written when the run starts, ``complete`` once it ends.

    ``faces`` x ``edits`` are the expected items (one face a photo); ``shard`` of ``num_shards`` names the part of a
    sharded face set (None: the whole set), so the shards of a multirun can be merged and checked."""

    faces: list[str]
    edits: list[str]
    shard: int | None = None
    num_shards: int = 1
    complete: bool = False

    @staticmethod
    def load(run_dir: str | os.PathLike) -> RunInfo | None:
        path = Path(run_dir) / RUN_INFO
        return RunInfo(**json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None

    def save(self, run_dir: str | os.PathLike) -> Path:
        return write_text(Path(run_dir) / RUN_INFO, json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n")

    def start(self, run_dir: str | os.PathLike) -> None:
        """Record the run as started (not complete); refuses a dir that holds another shard."""
        stored = RunInfo.load(run_dir)
        if stored is not None and (stored.shard, stored.num_shards) != (self.shard, self.num_shards):
            raise RunDirError(f"{run_dir} holds shard {stored.shard} of {stored.num_shards}, not shard {self.shard} "
                              f"of {self.num_shards}; resubmit a shard into its own dir "
                              f"('hydra.sweep.subdir=shard${{faceset.shard}}') or use a new one")
        self.complete = False
        self.save(run_dir)

    def finish(self, run_dir: str | os.PathLike) -> None:
        self.complete = True
        self.save(run_dir)

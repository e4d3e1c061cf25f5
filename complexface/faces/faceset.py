"""Face sets: a folder of photos plus optional perceived-group labels (``faces.csv``)."""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from complexface.errors import UserError
from complexface.faces.image_io import IMAGE_SUFFIXES

UNLABELED = "unlabeled"
DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo_faces"


@dataclass(frozen=True)
class FaceEntry:
    """One photo of a face set. ``group`` is a perceived-appearance annotation, not identity."""

    path: Path
    face_id: str
    group: str = UNLABELED
    attributes: dict[str, str] = field(default_factory=dict)


class FaceSetError(UserError, ValueError):
    """A face set that cannot be read."""


class FaceSet(Sequence[FaceEntry]):
    """The images in ``path`` (sorted; ``path`` may also be one photo), labelled from ``labels``
    (default ``faces.csv`` beside the images).

    Files listed in the labels but absent stay in the set, so a sweep reports them as missing.

    ``only`` keeps the listed file names or face ids; ``shard``/``num_shards`` keep one of ``num_shards`` parts
    (``shard_of``: by identity, balanced, the same on every machine); ``limit`` keeps the first N.
    """

    def __init__(self, path: str | Path, labels: str | Path | None = None,
                 only: Sequence[str] | None = None, limit: int | None = None, name: str | None = None,
                 shard: int | None = None, num_shards: int = 1) -> None:
        self.path = Path(path).expanduser()
        single = self.path.is_file()
        if single:  # one photo: a face set of one
            only, self.path = [self.path.name], self.path.parent
        if not self.path.is_dir():
            raise FaceSetError(f"face set folder not found: {self.path}; set faceset.path to a folder of photos "
                               f"(or one photo)")
        self.name = name or self.path.name
        label_file = Path(labels) if labels else self.path / "faces.csv"
        table = self._read_labels(label_file) if label_file.exists() else {}
        if labels and not label_file.exists():
            raise FaceSetError(f"labels file not found: {label_file}")
        files = {p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}
        files |= {self.path / name for name in table}  # listed but missing: reported by the sweep
        files = sorted(files)
        entries = []
        for file in files:
            row = dict(table.get(file.name, {}))
            group = row.pop("group", "") or UNLABELED
            row.pop("file", None)
            entries.append(FaceEntry(file, file.stem, group, row))
        if only:
            wanted = {str(o) for o in only}
            entries = [e for e in entries if e.path.name in wanted or e.face_id in wanted]
            missing = wanted - {e.path.name for e in entries} - {e.face_id for e in entries}
            if missing:
                raise FaceSetError(f"not in face set {self.name}: {', '.join(sorted(missing))}")
        if shard is not None or num_shards != 1:
            entries = shard_of(entries, shard, num_shards)
        self.shard, self.num_shards = shard, num_shards
        self.entries: list[FaceEntry] = entries[:limit] if limit else entries
        if not self.entries:
            raise FaceSetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.path}")

    @staticmethod
    def _read_labels(path: Path) -> dict[str, dict[str, str]]:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "file" not in reader.fieldnames:
                raise FaceSetError(f"{path} needs a header with a 'file' column (and usually 'group')")
            return {row["file"]: {k: (v or "").strip() for k, v in row.items() if k} for row in reader}

    @property
    def groups(self) -> list[str]:
        return sorted({e.group for e in self.entries})

    def __getitem__(self, index):  # type: ignore[override]
        return self.entries[index]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[FaceEntry]:
        return iter(self.entries)


def identity(entry: FaceEntry) -> str:
    """The person a photo shows: the ``identity`` column of the labels, else the photo's own id."""
    return entry.attributes.get("identity") or entry.face_id


def shard_of(entries: Sequence[FaceEntry], shard: int | None, num_shards: int) -> list[FaceEntry]:
    """The entries of part ``shard`` (0-based) of ``num_shards``: identities ordered by a checksum of their name
    (crc32: the same on every machine and Python) and dealt round-robin, so every photo of a person lands in the
    same part and the parts differ in size by at most one identity."""
    if not (isinstance(num_shards, int) and num_shards >= 1):
        raise FaceSetError(f"faceset.num_shards must be an integer >= 1, got {num_shards!r}")
    if not (isinstance(shard, int) and 0 <= shard < num_shards):
        raise FaceSetError(f"faceset.shard must be an integer in 0..{num_shards - 1} (faceset.num_shards="
                           f"{num_shards}), got {shard!r}")
    people = sorted({identity(e) for e in entries}, key=lambda p: (zlib.crc32(p.encode()), p))
    part = {person: i % num_shards for i, person in enumerate(people)}
    return [e for e in entries if part[identity(e)] == shard]


def demo_faceset(only: Sequence[str] | None = None, limit: int | None = None, shard: int | None = None,
                 num_shards: int = 1) -> FaceSet:
    """The 20 bundled CC0 portraits with their perceived-group labels."""
    return FaceSet(DEMO_DIR, only=only, limit=limit, name="demo", shard=shard, num_shards=num_shards)

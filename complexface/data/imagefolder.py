"""Build a Hugging Face ``imagefolder`` dataset from a catalog edit run.

Layout: ``<out>/{train,validation,test}/`` with the edited crops and one ``metadata.jsonl`` per
split (``file_name``, ``text``, ``text_en``, ``text_ja``, ``aus``, ``recipe``, ``felt``,
``displayed``, ``scale``, ``face``, ``group``, ``backend``, ``measured``). Splits are by identity
(no face in two splits), stratified by group and deterministic for a seed; captions are drawn
from the recipe templates with an RNG seeded per item, so a rebuild is byte-identical.
"""

from __future__ import annotations

import filecmp
import json
import random
import shutil
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from complexface.atomic import atomic_write, write_text
from complexface.au import EDITABLE, AUEdit
from complexface.expressions import LANGUAGES, CatalogError, Recipe, load_catalog
from complexface.runs import OK, Manifest, Record

SPLITS = ("train", "validation", "test")
SOURCE_CAPTIONS = {"en": "a photo of a person, expression as photographed",
                   "ja": "撮影されたままの表情の人物写真"}


def split_identities(groups: Mapping[str, str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """face id -> split. Within each group the faces are shuffled (seeded) and cut by ``fractions``
    (largest remainder); every split with a positive fraction gets at least one face overall."""
    assignment: dict[str, str] = {}
    by_group: dict[str, list[str]] = defaultdict(list)
    for face, group in sorted(groups.items()):
        by_group[group].append(face)
    total = sum(fractions.values())
    for group, faces in sorted(by_group.items()):
        random.Random(f"{seed}:{group}").shuffle(faces)
        exact = {s: len(faces) * fractions.get(s, 0.0) / total for s in SPLITS}
        counts = {s: int(v) for s, v in exact.items()}
        for s in sorted(SPLITS, key=lambda s: exact[s] - counts[s], reverse=True)[: len(faces) - sum(counts.values())]:
            counts[s] += 1
        start = 0
        for s in SPLITS:
            for face in faces[start:start + counts[s]]:
                assignment[face] = s
            start += counts[s]
    for split in SPLITS:  # a tiny face set may leave a split empty: borrow from the fullest split
        if fractions.get(split, 0) > 0 and split not in assignment.values() and len(assignment) >= len(SPLITS):
            donor = max(SPLITS, key=lambda s: list(assignment.values()).count(s))
            face = sorted(f for f, s in assignment.items() if s == donor)[0]
            assignment[face] = split
    return assignment


def _missed(record: Record, min_response: float) -> str:
    """Why a measured edit misses its recipe ('' if it does not, or was not measured)."""
    metrics = record.extra.get("metrics") or {}
    if metrics.get("status") != OK:
        return ""
    for au, want in record.edit.items():
        got = metrics.get(f"d_{au}")
        if abs(want) >= 1 and got is not None and got / want < min_response:
            return f"{au} measured {got:.2f} for a requested {want:g} (< {min_response:g} of it)"
    return ""


class ImageFolderBuilder:
    """Writes the dataset of a catalog run; resumable (copied images are kept) and idempotent."""

    def __init__(self, seed: int = 0, splits: Mapping[str, float] | None = None, language: str = "en",
                 include_sources: bool = True, min_response: float | None = None,
                 catalog: str | Path | None = None, folder: str = "dataset") -> None:
        if language not in LANGUAGES:
            raise CatalogError(f"dataset language must be one of {', '.join(LANGUAGES)}, got {language!r}")
        self.seed = seed
        self.splits = dict(splits or {"train": 0.7, "validation": 0.15, "test": 0.15})
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise CatalogError(f"unknown split(s) {', '.join(sorted(unknown))}; use {', '.join(SPLITS)}")
        self.language = language
        self.include_sources = include_sources
        self.min_response = min_response
        self.catalog = catalog
        self.folder = folder

    def _caption(self, recipe: Recipe | None, key: str) -> dict[str, str]:
        rng = random.Random(f"{self.seed}:{key}")
        texts = {lang: rng.choice(recipe.captions(lang)) if recipe else SOURCE_CAPTIONS[lang] for lang in LANGUAGES}
        return {"text": texts[self.language], **{f"text_{lang}": t for lang, t in texts.items()}}

    def build(self, run_dir: str | Path) -> dict:
        """Build ``<run_dir>/<folder>``; returns counts per split and the dropped edits."""
        run_dir = Path(run_dir)
        manifest = Manifest(run_dir)
        catalog = load_catalog(self.catalog)
        items = [(r, p) for r in manifest if r.status == OK for p in r.extra.get("placements", [])
                 if p["row"] in catalog and p["scale"] != 0]
        if not items:
            raise CatalogError(f"{run_dir} has no finished catalog edits; run edit.py with expression=catalog")
        out = run_dir / self.folder
        assignment = split_identities({r.face_id: r.group for r, _ in items}, self.splits, self.seed)
        rows: dict[str, list[dict]] = defaultdict(list)
        dropped = []
        for record, place in items:
            reason = _missed(record, self.min_response) if self.min_response is not None else ""
            if reason:
                dropped.append({"face": record.face_id, "edit": record.label, "recipe": place["row"], "reason": reason})
                continue
            recipe = catalog[place["row"]]
            name = f"{record.face_id}__{recipe.id}__{place['scale']:g}{Path(record.crop).suffix}"
            measured = (record.extra.get("metrics") or {})
            rows[assignment[record.face_id]].append({
                "file_name": name, **self._caption(recipe, f"{record.face_id}:{recipe.id}:{place['scale']:g}"),
                "aus": AUEdit(record.edit).vector(), "recipe": recipe.id, "felt": recipe.felt,
                "displayed": recipe.displayed, "scale": place["scale"], "face": record.face_id, "group": record.group,
                "backend": record.extra.get("editor", ""),
                "measured": [measured.get(f"d_{au}") for au in EDITABLE] if measured.get("status") == OK else None,
                "_src": record.crop})
        if self.include_sources:
            for face, record in {r.face_id: r for r, _ in items}.items():
                rows[assignment[face]].append({
                    "file_name": f"{face}__source{Path(record.source_crop).suffix}", **self._caption(None, face),
                    "aus": [0.0] * len(EDITABLE), "recipe": "as_photographed", "felt": "unknown",
                    "displayed": "as photographed", "scale": 0.0, "face": face, "group": record.group,
                    "backend": "source", "measured": None, "_src": record.source_crop})
        counts = {}
        for split in SPLITS:
            entries = sorted(rows.get(split, []), key=lambda e: e["file_name"])
            for entry in entries:
                self._copy(run_dir / entry.pop("_src"), out / split / entry["file_name"])
            if entries:
                write_text(out / split / "metadata.jsonl",
                           "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
            counts[split] = len(entries)
        write_text(out / "dropped.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dropped))
        return {"path": str(out), "rows": counts, "dropped": len(dropped),
                "faces": {s: sorted({f for f, a in assignment.items() if a == s}) for s in SPLITS}}

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        if target.exists() and filecmp.cmp(source, target, shallow=False):
            return
        with open(source, "rb") as src, atomic_write(target) as dst:
            shutil.copyfileobj(src, dst)

"""Build a Hugging Face ``imagefolder`` dataset from a catalog edit run.

Layout: ``<out>/{train,validation,test}/`` with the edited crops and one ``metadata.jsonl`` per
split (``file_name``, ``text``, ``text_en``, ``text_ja``, ``aus``, ``recipe``, ``felt``,
``displayed``, ``scale``, ``face``, ``group``, ``backend``, ``measured``). Splits are by identity
(no face in two splits), stratified by group and deterministic for a seed; captions are drawn
from the recipe templates with an RNG seeded per item, so a rebuild is byte-identical.
"""

from __future__ import annotations

import csv
import filecmp
import json
import math
import random
import shutil
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from complexface.atomic import atomic_write, is_temp, write_text
from complexface.au import EDITABLE, AUEdit
from complexface.expressions import LANGUAGES, CatalogError, Recipe, load_catalog
from complexface.runs import OK, Manifest, Record

SPLITS = ("train", "validation", "test")
RECOGNIZED_KEYS = ("level", "face", "recipe", "intensity", "face_group", "displayed_n", "displayed_rate", "felt_n",
                   "felt_rate")
"""Columns of ``recognized.csv`` (complexface.study.analysis) the builder reads."""
RECOGNITION_QUESTIONS = ("felt", "displayed", "both", "either")
UNRATED = ("drop", "keep", "cell")
BUILD_FILE = "build.json"
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
            face = min(f for f, s in assignment.items() if s == donor)
            assignment[face] = split
    return assignment


def _missed(record: Record, min_response: float) -> str:
    """Why a measured edit misses its recipe ('' if it does not, or was not measured): a requested AU whose
    measured change in the requested direction is under ``min_response`` of the request. Every requested AU is
    judged, whatever its size (a 0.5 request needs a 0.125 change at min_response 0.25): a recipe scaled down
    asks for small changes, and one that did not happen is as missing as a large one."""
    metrics = record.extra.get("metrics") or {}
    if metrics.get("status") != OK:
        return ""
    for au, want in record.edit.items():
        got = metrics.get(f"d_{au}")
        if want and got is not None and not math.isnan(got) and got / want < min_response:
            return f"{au} measured {got:.2f} for a requested {want:g} (< {min_response:g} of it)"
    return ""


def _intensity_key(value: object) -> float:
    return round(float(value), 6)


def load_recognized(path: str | Path, questions: list[str]) -> tuple[dict, dict]:
    """``recognized.csv`` -> ({(face, recipe, intensity): row} of the stimuli, {(recipe, intensity, face group):
    row} of the recipe x intensity x face group cells). Refuses a file without ratings of ``questions``."""
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"dataset.recognized: {path} does not exist (write it with python study.py "
                           "action=analyze: <study dir>/analysis/recognized.csv)")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [k for k in RECOGNIZED_KEYS if rows and k not in rows[0]]
    if not rows or missing:
        raise CatalogError(f"{path} is not a recognized.csv of complexface.study.analysis"
                           + (f" (no column {', '.join(missing)})" if missing else " (empty)"))
    stimuli, cells = {}, {}
    for row in rows:
        if row["level"] == "stimulus":
            stimuli[(row["face"], row["recipe"], _intensity_key(row["intensity"]))] = row
        elif row["level"] == "cell":
            cells[(row["recipe"], _intensity_key(row["intensity"]), row["face_group"])] = row
    for question in questions:
        if not any(_count(row[f"{question}_n"]) for row in stimuli.values()):
            other = "displayed" if question == "felt" else "felt"
            raise CatalogError(f"{path} has no {question}-emotion ratings of any stimulus (was the question asked?); "
                               f"use dataset.recognition_question={other}")
    return stimuli, cells


def _count(text: str) -> int:
    return int(float(text)) if text not in ("", None) else 0


class ImageFolderBuilder:
    """Writes the dataset of a catalog run; resumable (copied images are kept) and idempotent."""

    def __init__(self, seed: int = 0, splits: Mapping[str, float] | None = None, language: str = "en",
                 include_sources: bool = True, min_response: float | None = None,
                 catalog: str | Path | None = None, folder: str = "dataset", recognized: str | Path | None = None,
                 min_recognition: float = 0.5, recognition_question: str = "felt", unrated: str = "drop") -> None:
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
        if recognition_question not in RECOGNITION_QUESTIONS:
            raise CatalogError(f"dataset.recognition_question must be one of {', '.join(RECOGNITION_QUESTIONS)}, "
                               f"got {recognition_question!r}")
        if unrated not in UNRATED:
            raise CatalogError(f"dataset.unrated must be one of {', '.join(UNRATED)}, got {unrated!r}")
        self.recognized = recognized
        self.min_recognition = float(min_recognition)
        self.recognition_question = recognition_question
        self.unrated = unrated

    @property
    def _questions(self) -> list[str]:
        return ["felt", "displayed"] if self.recognition_question in ("both", "either") else [self.recognition_question]

    def _human(self, row: Mapping[str, str] | None, where: str) -> tuple[str, str]:
        """(rule, reason) why raters' answers drop an edit ('', '' to keep it): its recognition rate of the
        ``recognition_question`` emotion(s) under ``min_recognition``, or no ratings of it."""
        if row is None:
            return "unrated", f"not rated in {Path(self.recognized).name}"
        verdicts = []
        for question in self._questions:
            n = _count(row[f"{question}_n"])
            if not n:
                verdicts.append((None, f"no {question}-emotion ratings"))
                continue
            rate = float(row[f"{question}_rate"])
            ok = rate >= self.min_recognition
            verdicts.append((ok, f"{question} {rate:.2f} {'>=' if ok else '<'} {self.min_recognition:g} (n={n})"))
        outcomes = [ok for ok, _ in verdicts]
        keep = True in outcomes if self.recognition_question == "either" else all(ok for ok in outcomes)
        if keep:
            return "", ""
        if None in outcomes and False not in outcomes:
            return "unrated", f"{where}: " + "; ".join(r for _, r in verdicts)
        return "recognition", f"human recognition ({where}): " + "; ".join(r for _, r in verdicts)

    def _caption(self, recipe: Recipe | None, key: str) -> dict[str, str]:
        rng = random.Random(f"{self.seed}:{key}")
        texts = {lang: rng.choice(recipe.captions(lang)) if recipe else SOURCE_CAPTIONS[lang] for lang in LANGUAGES}
        return {"text": texts[self.language], **{f"text_{lang}": t for lang, t in texts.items()}}

    def build(self, run_dir: str | Path) -> dict:
        """Build ``<run_dir>/<folder>``; returns counts per split and of the dropped edits (by rule)."""
        run_dir = Path(run_dir)
        manifest = Manifest(run_dir)
        catalog = load_catalog(self.catalog)
        items = [(r, p) for r in manifest if r.status == OK for p in r.extra.get("placements", [])
                 if p["row"] in catalog and p["scale"] != 0]
        if not items:
            raise CatalogError(f"{run_dir} has no finished catalog edits; run edit.py with expression=catalog")
        stimuli, cells = load_recognized(self.recognized, self._questions) if self.recognized else ({}, {})
        out = run_dir / self.folder
        assignment = split_identities({r.face_id: r.group for r, _ in items}, self.splits, self.seed)
        rows: dict[str, list[dict]] = defaultdict(list)
        dropped, kept_unrated = [], 0
        for record, place in items:
            rule, reason = ("min_response", _missed(record, self.min_response)) if self.min_response is not None \
                else ("", "")
            human = None
            if not reason and self.recognized:
                key = (record.face_id, place["row"], _intensity_key(place["scale"]))
                human = stimuli.get(key)
                where = "stimulus"
                if human is None and self.unrated == "cell":
                    human = cells.get((place["row"], key[2], record.group))
                    where = "recipe x intensity x face group"
                rule, reason = self._human(human, where)
                if rule == "unrated" and self.unrated == "keep":
                    rule, reason, kept_unrated = "", "", kept_unrated + 1
            if reason:
                dropped.append({"face": record.face_id, "edit": record.label, "recipe": place["row"],
                                "scale": place["scale"], "rule": rule, "reason": reason})
                continue
            recipe = catalog[place["row"]]
            name = f"{record.face_id}__{recipe.id}__{place['scale']:g}{Path(record.crop).suffix}"
            measured = (record.extra.get("metrics") or {})
            entry = {
                "file_name": name, **self._caption(recipe, f"{record.face_id}:{recipe.id}:{place['scale']:g}"),
                "aus": AUEdit(record.edit).vector(), "recipe": recipe.id, "felt": recipe.felt,
                "displayed": recipe.displayed, "scale": place["scale"], "face": record.face_id, "group": record.group,
                "backend": record.extra.get("editor", ""),
                "measured": [measured.get(f"d_{au}") for au in EDITABLE] if measured.get("status") == OK else None}
            if self.recognized:
                entry.update(self._rates(human))
            rows[assignment[record.face_id]].append({**entry, "_src": record.crop})
        if self.include_sources:
            for face, record in {r.face_id: r for r, _ in items}.items():
                entry = {
                    "file_name": f"{face}__source{Path(record.source_crop).suffix}", **self._caption(None, face),
                    "aus": [0.0] * len(EDITABLE), "recipe": "as_photographed", "felt": "unknown",
                    "displayed": "as photographed", "scale": 0.0, "face": face, "group": record.group,
                    "backend": "source", "measured": None}
                if self.recognized:
                    entry.update(self._rates(None))
                rows[assignment[face]].append({**entry, "_src": record.source_crop})
        counts, written = {}, set()
        for split in SPLITS:
            entries = sorted(rows.get(split, []), key=lambda e: e["file_name"])
            for entry in entries:
                self._copy(run_dir / entry.pop("_src"), out / split / entry["file_name"])
                written.add(f"{split}/{entry['file_name']}")
            if entries:
                write_text(out / split / "metadata.jsonl",
                           "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
                written.add(f"{split}/metadata.jsonl")
            counts[split] = len(entries)
        stale = self._remove_stale(out, written)
        write_text(out / "dropped.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dropped))
        by_rule = {rule: sum(d["rule"] == rule for d in dropped) for rule in ("min_response", "recognition", "unrated")}
        summary = {"path": str(out), "rows": counts, "dropped": len(dropped), "dropped_by": by_rule,
                   "unrated_kept": kept_unrated, "stale_removed": len(stale),
                   "faces": {s: sorted({f for f, a in assignment.items() if a == s}) for s in SPLITS}}
        write_text(out / BUILD_FILE, json.dumps({
            "settings": {"seed": self.seed, "splits": self.splits, "language": self.language,
                         "include_sources": self.include_sources, "min_response": self.min_response,
                         "catalog": str(self.catalog) if self.catalog else None,
                         "recognized": str(self.recognized) if self.recognized else None,
                         "min_recognition": self.min_recognition, "recognition_question": self.recognition_question,
                         "unrated": self.unrated},
            **{k: v for k, v in summary.items() if k != "path"}, "files": sorted(written)},
            indent=1, ensure_ascii=False) + "\n")
        return summary

    def _rates(self, row: Mapping[str, str] | None) -> dict[str, float | None]:
        """``human_displayed`` / ``human_felt`` metadata columns: the raters' recognition rates (None: unrated)."""
        def rate(question: str) -> float | None:
            return float(row[f"{question}_rate"]) if row is not None and _count(row[f"{question}_n"]) else None

        return {"human_displayed": rate("displayed"), "human_felt": rate("felt")}

    @staticmethod
    def _remove_stale(out: Path, written: set[str]) -> list[str]:
        """Delete what an earlier build left in the split folders and this one did not write: images named like
        the builder's (``<face>__...``), ``metadata.jsonl`` and temp files of an interrupted write. Files of
        other names are left alone. Returns the removed paths (relative to ``out``)."""
        removed = []
        for split in SPLITS:
            folder = out / split
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                name = f"{split}/{path.name}"
                ours = "__" in path.name or path.name == "metadata.jsonl" or is_temp(path)
                if path.is_file() and ours and name not in written:
                    path.unlink()
                    removed.append(name)
            if not any(folder.iterdir()):
                folder.rmdir()
        return removed

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        if target.exists() and filecmp.cmp(source, target, shallow=False):
            return
        with open(source, "rb") as src, atomic_write(target) as dst:
            shutil.copyfileobj(src, dst)

"""Long-format export: one row per rater x answered trial (CSV and JSON), and one row per rater.

``export/answers.csv`` and ``export/answers.json`` carry the columns of ``COLUMNS`` (the contract with the
analysis). In the CSV files a text cell that a spreadsheet would read as a formula (starting with ``= + - @``,
a tab or a carriage return) is prefixed with ``'``; the JSON keeps the text as given, with typed values
(numbers, booleans, null for an empty cell). ``export/raters.csv`` has each rater's progress, attention-check
failures (``flagged`` at two or more) and completion code, to approve platform submissions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from complexface.atomic import atomic_write, write_text
from complexface.study.design import Design
from complexface.study.folder import StudyFolder
from complexface.study.store import Store
from complexface.study.tokens import Keys

COLUMNS = ("rater", "rater_group", "list", "trial", "kind", "stimulus", "recipe", "felt_target", "displayed_target",
           "intensity", "face", "face_group", "displayed_answer", "felt_answer", "genuineness", "confidence",
           "free_text", "rt_ms", "answered_at", "attention_expected", "attention_passed")
RATER_COLUMNS = ("rater", "rater_group", "list", "language", "source", "platform", "created_at", "consented_at",
                 "declined_at", "started_at", "completed_at", "n_trials", "n_answers", "attention_checks",
                 "attention_failed", "flagged", "completion_code")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FLAG_AT = 2
"""Failed attention checks at which a rater is flagged (what crowdsourcing platforms expect before rejecting)."""


def neutralise(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, made inert with a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralise(value)


def answer_rows(design: Design, raters: Sequence[Mapping], answers: Iterable[Mapping]) -> list[dict]:
    """One dict per stored answer, in the columns of ``COLUMNS`` (typed: None for empty)."""
    by_id = {r["id"]: r for r in raters}
    sequences = {r["id"]: json.loads(r["seq"]) for r in raters}
    rows = []
    for answer in answers:
        rater = by_id[answer["rater"]]
        trial = sequences[rater["id"]][answer["trial"]]
        stimulus = design.stimuli[trial["stimulus"]]
        attention = trial["kind"] == "attention"
        given = answer[design.attention_question] if attention else None
        rows.append({
            "rater": rater["id"], "rater_group": rater["rater_group"] or "", "list": rater["list"],
            "trial": answer["trial"], "kind": trial["kind"], "stimulus": stimulus["id"], "recipe": stimulus["recipe"],
            "felt_target": stimulus["felt_target"], "displayed_target": stimulus["displayed_target"],
            "intensity": float(stimulus["intensity"]), "face": stimulus["face"], "face_group": stimulus["face_group"],
            "displayed_answer": answer["displayed"], "felt_answer": answer["felt"],
            "genuineness": answer["genuineness"], "confidence": answer["confidence"],
            "free_text": answer["free_text"], "rt_ms": answer["rt_ms"], "answered_at": answer["answered_at"],
            "attention_expected": trial["expected"] if attention else None,
            "attention_passed": (given == trial["expected"]) if attention else None,
        })
    return rows


def rater_rows(raters: Sequence[Mapping], rows: Sequence[Mapping], keys: Keys, design: Design) -> list[dict]:
    checks: dict[str, list[bool]] = {}
    for row in rows:
        if row["kind"] == "attention":
            checks.setdefault(row["rater"], []).append(bool(row["attention_passed"]))
    out = []
    for r in raters:
        passed = checks.get(r["id"], [])
        failed = sum(not p for p in passed)
        code = (design.completion.get("code") or keys.completion_code(r["id"])) if r["completed_at"] else None
        out.append({"rater": r["id"], "rater_group": r["rater_group"], "list": r["list"], "language": r["language"],
                    "source": r["source"], "platform": r.get("platform"), "created_at": r["created_at"],
                    "consented_at": r["consented_at"], "declined_at": r["declined_at"], "started_at": r["started_at"],
                    "completed_at": r["completed_at"], "n_trials": r["n_trials"], "n_answers": r["n_answers"],
                    "attention_checks": len(passed), "attention_failed": failed, "flagged": failed >= FLAG_AT,
                    "completion_code": code})
    return out


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping]) -> Path:
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])
    return path


def export(study_dir: str | Path) -> dict[str, Path | int]:
    """Write ``export/answers.csv``, ``answers.json`` and ``raters.csv``; returns the paths and counts."""
    folder = StudyFolder(study_dir).require()
    design = Design.load(folder)
    store = Store(folder)
    raters = store.raters()
    rows = answer_rows(design, raters, store.answers())
    written = {
        "answers_csv": write_csv(folder.export / "answers.csv", COLUMNS, rows),
        "answers_json": write_text(folder.export / "answers.json", "[\n" + ",\n".join(
            json.dumps(row, ensure_ascii=False) for row in rows) + "\n]\n"),
        "raters_csv": write_csv(folder.export / "raters.csv", RATER_COLUMNS,
                                rater_rows(raters, rows, Keys(folder.secret()), design)),
    }
    return {**written, "rows": len(rows), "raters": len(raters),
            "completed": sum(1 for r in raters if r["completed_at"])}

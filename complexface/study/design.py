"""A study design: stimuli chosen from a run, counterbalanced lists, per-rater orders, the questions asked.

- Conditions are the chosen (recipe, intensity) pairs plus, with ``baseline``, the unedited face (``source``).
- Lists form a Latin square over conditions: with C conditions there are C lists, and list ``l`` shows the
  face at index ``i`` (faces sorted by group, then id) in condition ``(i + l) mod C``. Every rater sees each face
  once, so never the same face in two conditions; over the C lists every face appears in every condition once.
- Some faces (``practice.faces``) are kept out of the lists: practice trials and attention checks show them.
- Each rater's order is seeded by the study seed and the rater id: practice first (not scored), then the list
  shuffled, with the instructed-response attention checks ("for this face, choose 'surprise'") inserted at
  random positions between scored trials, never two in a row.
- The design is saved as ``design.json`` in the study folder; raters keep the order made when they joined.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from complexface.atomic import atomic_write, write_text
from complexface.settings import require
from complexface.study.folder import StudyError, StudyFolder
from complexface.study.sources import IMAGES, SOURCE, Candidate, read_runs
from complexface.study.text import LANGUAGES, Texts, check_language

OTHER = "other"
QUESTIONS = ("displayed", "felt", "genuineness", "confidence", "free_text")
EMOTION_QUESTIONS = ("displayed", "felt")
GENUINENESS = (-7, 7)
CONFIDENCE = (1, 5)
KINDS = ("practice", "trial", "baseline", "attention")
SECONDS_PER_TRIAL = 12
DEFAULT_OPTIONS = ("joy", "surprise", "sadness", "fear", "disgust", "anger", "contempt", "neutral", OTHER)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class StudySpec:
    """What ``conf/study/<design>.yaml`` asks for (``study`` node); ``create()`` turns it into a ``Design``."""

    dir: str
    language: str = "en"
    seed: int = 0
    stimuli: dict = field(default_factory=dict)
    practice: dict = field(default_factory=dict)
    attention: dict = field(default_factory=dict)
    questions: dict = field(default_factory=dict)
    options: list[str] = field(default_factory=lambda: list(DEFAULT_OPTIONS))
    completion: dict = field(default_factory=dict)
    texts: dict = field(default_factory=dict)
    minutes: int | None = None
    analysis: dict = field(default_factory=dict)
    """Passed on to ``complexface.study.analysis.analyze``; not part of the design."""

    def __post_init__(self) -> None:
        check_language(self.language)
        self.stimuli = {"recipes": None, "intensities": None, "faces": None, "groups": None, "image": "crop",
                        "baseline": True, "targets": {}, **(self.stimuli or {})}
        self.practice = {"trials": 2, "faces": 1, **(self.practice or {})}
        self.attention = {"trials": 2, **(self.attention or {})}
        self.questions = {"displayed": True, "felt": True, "genuineness": True, "confidence": True,
                          "free_text": False, "free_text_max": 500, **(self.questions or {})}
        self.completion = {"code": None, "redirect": None, "platform": "Prolific", **(self.completion or {})}
        unknown = sorted(set(self.questions) - {*QUESTIONS, "free_text_max"})
        require(not unknown,
                f"study.questions: unknown question(s) {', '.join(unknown)}; known: {', '.join(QUESTIONS)}")
        require(any(self.questions[q] for q in QUESTIONS), "study.questions: switch on at least one question")
        require(isinstance(self.questions["free_text_max"], int) and 1 <= self.questions["free_text_max"] <= 5000,
                f"study.questions.free_text_max must be 1..5000 characters, got {self.questions['free_text_max']!r}")
        require(self.stimuli["image"] in IMAGES,
                f"study.stimuli.image must be one of {', '.join(IMAGES)}, got {self.stimuli['image']!r}")
        options = [str(o) for o in self.options]
        require(len(options) == len(set(options)) and len(options) >= 2,
                f"study.options must list at least two distinct emotion keys, got {options}")
        require(all(o.replace("_", "").isalnum() for o in options),
                f"study.options: keys are plain words (letters, digits, _), got {options}")
        require(OTHER in options, f"study.options must include '{OTHER}' (\"none of these / other\"): without an "
                                  f"escape option forced-choice agreement is partly an artifact of the list")
        self.options = options
        require(int(self.practice["trials"]) >= 0 and int(self.attention["trials"]) >= 0,
                "study.practice.trials and study.attention.trials must be >= 0")
        if self.attention["trials"]:
            require(any(self.questions[q] for q in EMOTION_QUESTIONS),
                    "study.attention needs the displayed or the felt question: a check asks for one emotion")
        require(self.completion["code"] is None or str(self.completion["code"]).strip() != "",
                "study.completion.code must be null (one code per rater) or the platform's code")
        redirect = self.completion["redirect"]
        require(redirect is None or str(redirect).startswith("https://"),
                f"study.completion.redirect must be an https:// URL (with {{code}}), got {redirect!r}")
        self.texts = dict(self.texts or {})
        require(set(self.texts) <= set(LANGUAGES), f"study.texts: languages are {', '.join(LANGUAGES)}, got "
                                                   f"{', '.join(map(str, self.texts))}")
        for language in LANGUAGES:  # unknown keys fail now, not when a rater opens a page
            Texts(language, self.texts)


@dataclass
class Design:
    """The saved design (``design.json``); see the module docstring for the rules."""

    language: str
    seed: int
    options: list[str]
    questions: dict
    stimuli: dict[str, dict]
    conditions: list[list]
    lists: list[list[str]]
    practice: list[str]
    attention_stimuli: list[str]
    attention_trials: int
    completion: dict
    texts: dict
    minutes: int
    source: str = ""
    created: str = ""
    missing: list[dict] = field(default_factory=list)
    version: int = 1

    @property
    def chance(self) -> float:
        return 1.0 / len(self.options)

    @property
    def attention_question(self) -> str:
        return next(q for q in EMOTION_QUESTIONS if self.questions[q])

    def asked(self, kind: str) -> list[str]:
        """The questions a trial of this kind asks."""
        if kind == "attention":
            return [self.attention_question]
        return [q for q in QUESTIONS if self.questions[q]]

    def sequence(self, list_index: int, rater: str) -> list[dict]:
        """The trials of a rater on ``list_index``, in the rater's seeded order: practice, then the list with
        attention checks between scored trials. Each trial: ``{"kind", "stimulus"[, "expected"]}``."""
        rng = random.Random(f"{self.seed}:{rater}")
        practice = [{"kind": "practice", "stimulus": s} for s in rng.sample(self.practice, len(self.practice))]
        listed = rng.sample(self.lists[list_index], len(self.lists[list_index]))
        main = [{"kind": "baseline" if self.stimuli[s]["recipe"] == SOURCE else "trial", "stimulus": s}
                for s in listed]
        n_checks = min(self.attention_trials, len(main)) if self.attention_stimuli else 0
        slots = sorted(rng.sample(range(1, len(main) + 1), n_checks), reverse=True)
        choices = [o for o in self.options if o != OTHER]
        expected = rng.sample(choices, min(n_checks, len(choices)))
        expected += [rng.choice(choices) for _ in range(n_checks - len(expected))]
        for j, slot in enumerate(slots):
            stim = self.attention_stimuli[j % len(self.attention_stimuli)]
            main.insert(slot, {"kind": "attention", "stimulus": stim, "expected": expected[j]})
        return practice + main

    def to_json(self) -> dict:
        return {**asdict(self), "chance": self.chance, "n_lists": len(self.lists)}

    def save(self, folder: StudyFolder) -> Path:
        return write_text(folder.design, json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, folder: StudyFolder) -> Design:
        raw = json.loads(folder.require().design.read_text(encoding="utf-8"))
        raw.pop("chance", None)
        raw.pop("n_lists", None)
        return cls(**raw)


def _pick(values: Sequence, wanted: Sequence | None, what: str, key=str) -> set:
    """The values of ``wanted`` (all when None), refusing names the run does not have."""
    have = {key(v) for v in values}
    if wanted is None:
        return have
    wanted = {key(w) for w in wanted}
    unknown = sorted(wanted - have, key=str)
    if unknown:
        raise StudyError(f"study.stimuli.{what}: not in the run: {', '.join(map(str, unknown))}; the run has "
                         f"{', '.join(map(str, sorted(have, key=str)))}")
    return wanted


def select(candidates: Sequence[Candidate], stimuli: Mapping) -> list[Candidate]:
    """The candidates ``study.stimuli`` asks for: recipes and intensities pick edits, faces and groups pick
    faces (baselines included when ``baseline``)."""
    edits = [c for c in candidates if not c.baseline]
    recipes = _pick([c.recipe for c in edits], stimuli.get("recipes"), "recipes")
    intensities = _pick([c.intensity for c in edits], stimuli.get("intensities"), "intensities", key=float)
    faces = _pick([c.face for c in candidates], stimuli.get("faces"), "faces")
    groups = _pick([c.face_group for c in candidates], stimuli.get("groups"), "groups")
    chosen = [c for c in edits if c.recipe in recipes and c.intensity in intensities]
    if stimuli.get("baseline", True):
        chosen += [c for c in candidates if c.baseline]
    return [c for c in chosen if c.face in faces and c.face_group in groups]


def _stimulus_id(seed: int, c: Candidate, use: str) -> str:
    return "s" + hashlib.sha256(f"{seed}|{c.face}|{c.recipe}|{c.intensity:g}|{use}".encode()).hexdigest()[:12]


def latin_square(faces: Sequence[str], conditions: Sequence[tuple], cells: Mapping[tuple, Candidate]
                 ) -> tuple[list[list[Candidate]], list[dict]]:
    """C lists over C conditions: list ``l`` shows face ``i`` in condition ``(i + l) mod C``; a cell the run
    lacks (a failed edit) is left out and reported."""
    lists: list[list[Candidate]] = []
    missing = []
    for index in range(len(conditions)):
        chosen = []
        for i, face in enumerate(faces):
            condition = conditions[(i + index) % len(conditions)]
            cell = cells.get((face, *condition))
            if cell is None:
                missing.append({"list": index, "face": face, "recipe": condition[0], "intensity": condition[1]})
            else:
                chosen.append(cell)
        lists.append(chosen)
    return lists, missing


def _copy(candidate: Candidate, folder: StudyFolder, sid: str) -> str:
    """Re-encode the image into the study folder (no metadata, an opaque name); returns its relative path."""
    relative = f"{folder.stimuli.name}/{sid}.jpg"
    with Image.open(candidate.path) as image:
        rgb = image.convert("RGB")
    with atomic_write(folder.path / relative) as handle:
        rgb.save(handle, format="JPEG", quality=92)
    return relative


def _entry(c: Candidate, sid: str, file: str, use: str) -> dict:
    return {"id": sid, "file": file, "use": use, "recipe": c.recipe, "label": c.label,
            "felt_target": c.felt_target, "displayed_target": c.displayed_target, "intensity": c.intensity,
            "face": c.face, "face_group": c.face_group, "origin": str(c.path)}


def build(spec: StudySpec, candidates: Sequence[Candidate], folder: StudyFolder, source: str = "") -> Design:
    """The design of ``spec`` over ``candidates``; copies the images it uses into the study folder."""
    chosen = select(candidates, spec.stimuli)
    if not any(not c.baseline for c in chosen):
        raise StudyError("study.stimuli chose no edited image; widen recipes/intensities/faces/groups")
    rng = random.Random(spec.seed)
    faces = sorted({(c.face_group, c.face) for c in chosen})
    n_practice, n_attention = int(spec.practice["trials"]), int(spec.attention["trials"])
    reserve = spec.practice["faces"] if (n_practice or n_attention) else 0
    if isinstance(reserve, int):
        require(0 <= reserve < len(faces), f"study.practice.faces: {reserve} face(s) kept for practice and "
                                           f"attention checks leave none of the {len(faces)} chosen for trials")
        reserved = {f for _, f in rng.sample(faces, reserve)}
    else:
        reserved = set(map(str, reserve))
        unknown = reserved - {f for _, f in faces}
        require(not unknown, f"study.practice.faces: not among the chosen faces: {', '.join(sorted(unknown))}")
    if (n_practice or n_attention) and not reserved:
        raise StudyError("practice trials and attention checks need a face kept out of the lists: "
                         "set study.practice.faces to 1 or more")
    main_faces = [f for _, f in faces if f not in reserved]
    require(bool(main_faces), "study.practice.faces keeps every chosen face out of the lists")
    main = [c for c in chosen if c.face not in reserved]
    order = list(dict.fromkeys(c.recipe for c in main if not c.baseline))
    conditions = sorted({c.condition for c in main if not c.baseline},
                        key=lambda k: (order.index(k[0]), k[1]))
    if any(c.baseline for c in main):
        conditions.append((SOURCE, 0.0))
    cells = {(c.face, *c.condition): c for c in main}
    square, missing = latin_square(main_faces, conditions, cells)
    empty = [i for i, lst in enumerate(square) if not lst]
    if empty:
        raise StudyError(f"list(s) {empty} would show no image: the run lacks those faces x conditions")

    stimuli: dict[str, dict] = {}

    def add(c: Candidate, use: str) -> str:
        sid = _stimulus_id(spec.seed, c, use)
        if sid not in stimuli:
            stimuli[sid] = _entry(c, sid, _copy(c, folder, sid), use)
        return sid

    lists = [[add(c, "trial") for c in lst] for lst in square]
    spare = sorted((c for c in chosen if c.face in reserved), key=lambda c: (c.face, c.recipe, c.intensity))
    edited = [c for c in spare if not c.baseline] or spare
    practice = [add(c, "practice") for c in (rng.sample(edited, min(n_practice, len(edited))) if edited else [])]
    while len(practice) < n_practice and edited:  # fewer spare images than practice trials: show some twice
        practice.append(add(rng.choice(edited), "practice"))
    plain = [c for c in spare if c.baseline] or spare
    attention = [add(c, "attention") for c in plain] if n_attention else []
    n_trials = len(practice) + max(len(lst) for lst in lists) + n_attention
    minutes = spec.minutes or max(1, math.ceil(n_trials * SECONDS_PER_TRIAL / 60))
    return Design(spec.language, spec.seed, spec.options, dict(spec.questions), stimuli,
                  [list(c) for c in conditions], lists, practice, attention, n_attention, dict(spec.completion),
                  dict(spec.texts or {}), minutes, source, _now(), missing)


def create(spec: StudySpec, input_run: str | Path, force: bool = False) -> Design:
    """Make the study folder ``spec.dir`` from a run: design.json, stimuli/, the database and the secret."""
    from complexface.study.store import Store

    folder = StudyFolder(spec.dir)
    if folder.exists:
        answered = Store(folder).count_answers()
        if not force or answered:
            raise StudyError(f"{folder.path} already holds a study"
                             + (f" with {answered} answers" if answered else "")
                             + ("; use a new study.dir" if answered or force else
                                "; use a new study.dir, or force=true to replace its design (no answers yet)"))
    candidates = read_runs(input_run, spec.stimuli["image"], spec.stimuli.get("targets"))
    if force:
        for old in folder.stimuli.glob("*.jpg"):
            old.unlink()
    design = build(spec, candidates, folder, str(Path(input_run).expanduser().resolve()))
    folder.secret()
    store = Store(folder)
    if force:
        store.reset_raters()
    design.save(folder)
    return design

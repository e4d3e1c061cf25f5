"""Candidate stimuli of a run: an edit run (``manifest.jsonl``), a generated-image run (``choice.json``) or a
multirun folder of either. Each candidate says which face, recipe and intensity it shows and what it should read as."""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from complexface.study.folder import StudyError

SOURCE = "source"
"""The recipe name of a baseline stimulus: the face as photographed (unedited)."""
NEUTRAL = "neutral"
IMAGES = ("crop", "photo")


@dataclass(frozen=True)
class Candidate:
    """One image a study could show."""

    face: str
    face_group: str
    recipe: str
    """Catalog recipe id, or the edit label of a non-catalog row; ``"source"`` for the unedited face."""
    intensity: float
    """The sweep's scale of the recipe (0 for the unedited face)."""
    felt_target: str
    displayed_target: str
    path: Path
    label: str = ""
    """The AU edit actually applied (``AU6+AU12=2+2``); empty for the unedited face."""
    run: str = ""

    @property
    def baseline(self) -> bool:
        return self.recipe == SOURCE

    @property
    def condition(self) -> tuple[str, float]:
        return self.recipe, self.intensity


def _catalog_targets(config: Mapping) -> dict[str, tuple[str, str]]:
    """Recipe id -> (felt, displayed) of the catalog an edit or generate run used (the bundled one by default)."""
    from complexface.expressions import load_catalog

    expression = config.get("expression") or {}
    path = expression.get("path") if isinstance(expression, Mapping) else None
    generator = config.get("generator")
    retriever = ((generator or {}).get("retriever") or {}) if isinstance(generator, Mapping) else {}
    path = path or retriever.get("catalog")
    try:
        return {rid: (r.felt, r.displayed) for rid, r in load_catalog(path).items()}
    except Exception as err:  # noqa: BLE001 - a run whose catalog moved still has edit labels
        warnings.warn(f"could not read the run's catalog ({err}); recipes without study.stimuli.targets have no "
                      f"target emotions", stacklevel=2)
        return {}


def _read_config(run_dir: Path) -> dict:
    for name in ("config.yaml", ".hydra/config.yaml"):
        if (run_dir / name).exists():
            return yaml.safe_load((run_dir / name).read_text(encoding="utf-8")) or {}
    return {}


def _targets(recipe: str, catalog: Mapping[str, tuple[str, str]], targets: Mapping) -> tuple[str, str]:
    own = targets.get(recipe)
    if own is not None:
        return str(own.get("felt", "")), str(own.get("displayed", ""))
    return catalog.get(recipe, ("", ""))


def _face_photo(config: Mapping, face_file: str) -> Path | None:
    """The original photo of an edit run's face (for ``image=photo`` baselines)."""
    faceset = config.get("faceset") or {}
    target = str(faceset.get("_target_", ""))
    if target.endswith("demo_faceset"):
        from complexface.faces.faceset import DEMO_DIR

        return Path(DEMO_DIR) / face_file
    if faceset.get("path"):
        root = Path(str(faceset["path"])).expanduser()
        return root if root.is_file() else root / face_file
    return None


def read_edit_run(run_dir: Path, image: str = "crop", targets: Mapping | None = None) -> list[Candidate]:
    """Every edited image of an edit run (one per plan placement: recipe x scale) and each face's source."""
    from complexface.runs import OK, Manifest

    config = _read_config(run_dir)
    catalog = _catalog_targets(config)
    found: list[Candidate] = []
    sources: dict[str, Candidate] = {}
    for record in Manifest(run_dir):
        if record.status != OK or not record.crop:
            continue
        out = run_dir / (record.crop if image == "crop" else record.photo)
        if any(float(v) != 0 for v in record.edit.values()):
            placements = record.extra.get("placements") or [{"row": record.label, "scale": 1.0}]
            for place in placements:
                felt, displayed = _targets(place["row"], catalog, targets or {})
                found.append(Candidate(record.face_id, record.group, str(place["row"]), float(place["scale"]), felt,
                                       displayed, out, record.label, run_dir.name))
        if record.face_id not in sources:
            source = run_dir / record.source_crop if image == "crop" else _face_photo(config, record.face_file)
            if source is not None and source.exists():
                sources[record.face_id] = Candidate(record.face_id, record.group, SOURCE, 0.0, NEUTRAL, NEUTRAL,
                                                    source, "", run_dir.name)
    return found + list(sources.values())


def _group_of(face: Path) -> str:
    """The perceived group of a photo from the ``faces.csv`` beside it (``unlabeled`` without one)."""
    labels = face.parent / "faces.csv"
    if labels.exists():
        with open(labels, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                if row.get("file") == face.name:
                    return (row.get("group") or "").strip() or "unlabeled"
    return "unlabeled"


def _output(run_dir: Path, written: str) -> Path:
    """A file a generate run wrote (recorded absolute or relative to where it ran): looked up in ``run_dir``."""
    path = Path(written)
    if path.is_absolute() and path.exists():
        return path
    for candidate in (run_dir / path, run_dir / path.name, run_dir / "images" / path.name):
        if candidate.exists():
            return candidate
    return run_dir / path.name


def read_generate_run(run_dir: Path, image: str = "crop", targets: Mapping | None = None) -> list[Candidate]:
    """The images of a ``generate.py`` run: the recipe generator's edit (and its source as the baseline), or
    every image the sd_lora generator drew (new faces, one per seed; no baseline)."""
    record = json.loads((run_dir / "choice.json").read_text(encoding="utf-8"))
    catalog = _catalog_targets(_read_config(run_dir))
    targets = targets or {}
    if "images" in record:  # sd_lora: new faces, one identity per seed
        found = []
        for item in record["images"]:
            recipe = item.get("recipe_id") or "prompt"
            felt, displayed = _targets(recipe, catalog, targets)
            found.append(Candidate(f"seed{item['seed']}", "generated", recipe, float(record.get("lora_scale", 1.0)),
                                   felt, displayed, _output(run_dir, item["file"]), recipe, run_dir.name))
        return found
    face = Path(record["face"])
    group = _group_of(face)
    recipe = record["recipe_id"]
    felt, displayed = _targets(recipe, catalog, targets)
    if (recipe not in targets) and record.get("felt"):
        felt, displayed = record["felt"], record["displayed"]
    outputs = record["outputs"]
    edited = _output(run_dir, outputs["edit" if image == "crop" else "photo"])
    label = "+".join(record.get("applied", {})) + "=" + "+".join(f"{v:g}" for v in record.get("applied", {}).values())
    found = [Candidate(face.stem, group, recipe, float(record.get("scale", 1.0)), felt, displayed, edited, label,
                       run_dir.name)]
    source = _output(run_dir, outputs["source"]) if image == "crop" else face
    if source.exists():
        found.append(Candidate(face.stem, group, SOURCE, 0.0, NEUTRAL, NEUTRAL, source, "", run_dir.name))
    return found


def _is_run(folder: Path) -> bool:
    return (folder / "manifest.jsonl").exists() or (folder / "choice.json").exists()


def read_runs(path: str | Path, image: str = "crop", targets: Mapping | None = None) -> list[Candidate]:
    """Candidates of one run folder, or of every run directly inside a multirun folder; the first run that
    shows a (face, recipe, intensity) wins."""
    if image not in IMAGES:
        raise StudyError(f"study.stimuli.image must be one of {', '.join(IMAGES)}, got {image!r}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise StudyError(f"input not found: {root}; give an edit.py or generate.py run dir (or a multirun folder)")
    runs = [root] if _is_run(root) else sorted(p for p in root.iterdir() if p.is_dir() and _is_run(p))
    if not runs:
        raise StudyError(f"{root} is not an edit run (manifest.jsonl) or a generate run (choice.json), and holds "
                         f"none; give input=<an edit.py or generate.py output dir>")
    seen: dict[tuple[str, str, float], Candidate] = {}
    for run in runs:
        read = read_edit_run if (run / "manifest.jsonl").exists() else read_generate_run
        for candidate in read(run, image, targets):
            if not candidate.path.exists():
                warnings.warn(f"{candidate.path} is missing: left out", stacklevel=2)
                continue
            seen.setdefault((candidate.face, candidate.recipe, candidate.intensity), candidate)
    return list(seen.values())

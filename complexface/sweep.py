"""AU sweeps: every face of a face set x every edit of a plan, resumable, one bad face never stops it."""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from complexface.atomic import remove_stale_temps
from complexface.au import AUEdit, AUError, parse_edit
from complexface.editors.base import Editor
from complexface.expressions import Recipe, load_catalog, select_recipes
from complexface.faces import (
    AlignedFace,
    BackgroundCondition,
    FaceEntry,
    FacePipeline,
    ImageError,
    NoFaceError,
    paste_back,
    save_image,
)
from complexface.measure.metrics import EditMeasurer
from complexface.runs import FAILED, OK, Manifest, Record


class EditPlan:
    """Rows of base edits, each swept over intensity ``scales`` (a base edit times a scale).

    ``EditPlan(["AU4=1", "AU6+AU12=1+1"], scales=range(-5, 6))`` is the poster sweep.
    """

    def __init__(self, edits: Sequence[str | Mapping | AUEdit], scales: Sequence[float] | None = None,
                 name: str = "custom", rows: Sequence[str] | None = None,
                 recipes: Mapping[str, Recipe] | None = None) -> None:
        if not edits:
            raise AUError("the expression has no edits; give e.g. expression.edits=[AU12:3,AU6+AU12:2+2]")
        self.name = name
        self.base = [_edit_of(e) for e in edits]
        self.scales = [float(s) for s in (scales if scales is not None and len(scales) else [1.0])]
        self.grid = [[b.scaled(s) for s in self.scales] for b in self.base]
        self.rows = list(rows) if rows else [b.label for b in self.base]
        """Row names: the base edit's label, or e.g. a recipe id."""
        if len(self.rows) != len(self.base):
            raise AUError(f"{len(self.rows)} row names for {len(self.base)} edits")
        self.recipes = dict(recipes or {})
        """The whole catalog of a catalog plan (its rows are some of these recipe ids); empty otherwise."""

    @property
    def row_labels(self) -> list[str]:
        return self.rows

    @property
    def row_slugs(self) -> list[str]:
        """File-name-safe row names."""
        return [b.slug if r == b.label else r for r, b in zip(self.rows, self.base, strict=True)]

    def without_sided(self) -> tuple[EditPlan, list[str]]:
        """This plan without the rows that give one side of an AU (``AU12L``), and those rows' names."""
        keep = [i for i, b in enumerate(self.base) if not b.sided]
        if len(keep) == len(self.base):
            return self, []
        plan = EditPlan([self.base[i] for i in keep], self.scales, self.name, [self.rows[i] for i in keep],
                        self.recipes)
        return plan, [r for i, r in enumerate(self.rows) if i not in keep]

    def placements(self, edit: AUEdit) -> list[dict]:
        """Where an edit sits in the plan: ``[{"row": name, "scale": s}, ...]`` (the zero edit may sit in every row)."""
        return [{"row": row, "scale": scale} for row, cells in zip(self.rows, self.grid, strict=True)
                for scale, cell in zip(self.scales, cells, strict=True) if cell.label == edit.label]

    @property
    def edits(self) -> list[AUEdit]:
        """Distinct edits in row-major order (a zero edit shared by rows appears once)."""
        seen: dict[str, AUEdit] = {}
        for row in self.grid:
            for edit in row:
                seen.setdefault(edit.label, edit)
        return list(seen.values())

    def __len__(self) -> int:
        return len(self.edits)


def _edit_of(entry: str | Mapping | AUEdit) -> AUEdit:
    """An edit of a plan: an edit string or mapping, or the path of a recipe JSON the app exported (``.json``)."""
    if isinstance(entry, str) and entry.strip().lower().endswith(".json"):
        from complexface.api import read_recipe_file

        path = Path(entry.strip()).expanduser()
        if not path.is_file():
            raise AUError(f"recipe file not found: {path}")
        return read_recipe_file(path)
    return parse_edit(entry)


def catalog_plan(only: Sequence[str] | None = None, scales: Sequence[float] | None = None,
                 path: str | Path | None = None) -> EditPlan:
    """An edit plan with one row per catalog recipe (``only`` picks recipe ids), swept over ``scales``."""
    chosen = select_recipes(only, path)
    return EditPlan([r.aus for r in chosen.values()], scales=scales, name="catalog", rows=list(chosen),
                    recipes=load_catalog(path))


@dataclass
class SweepJob:
    """Everything a worker needs to process faces (picklable)."""

    plan: EditPlan
    editor: Editor
    pipeline: FacePipeline
    run_dir: Path
    bg_condition: BackgroundCondition = field(default_factory=BackgroundCondition)
    measurer: EditMeasurer | None = None
    """Measures each face's edits right after editing (in the worker); None = no measurement."""
    crop_format: str = "png"
    photo_format: str = "jpg"

    def __post_init__(self) -> None:
        self.editor.check(self.plan.edits)  # e.g. one-sided AUs for an editor without sides: before any work


def face_key(entry: FaceEntry, index: int) -> str:
    return entry.face_id if index == 0 else f"{entry.face_id}_f{index}"


def _fail(entry: FaceEntry, edits: Sequence[AUEdit], reason: str, face_id: str | None = None, **kw) -> list[Record]:
    return [Record(entry.path.name, face_id or entry.face_id, entry.group, dict(e.values), e.label, FAILED, reason,
                   **kw) for e in edits]


def process_face(job: SweepJob, entry: FaceEntry, done: frozenset[tuple[str, str]] = frozenset()) -> list[Record]:
    """Edit one photo's face(s) with every edit not in ``done`` ((face id, edit label) pairs);
    failures become records, never exceptions."""
    try:
        faces = job.pipeline(entry.path)
    except (ImageError, NoFaceError) as err:
        return _fail(entry, job.plan.edits, str(err))
    except Exception as err:  # noqa: BLE001 - a bad photo must not stop the sweep
        return _fail(entry, job.plan.edits, f"could not read faces: {type(err).__name__}: {err}")
    records: list[Record] = []
    for face in faces:
        fid = face_key(entry, face.index)
        pending = [e for e in job.plan.edits if (fid, e.label) not in done]
        if not pending:
            continue
        crop_dir = Path("crops") / fid
        source = crop_dir / f"source.{job.crop_format}"
        save_image(face.aligned.image, job.run_dir / source)
        common = {"source_crop": str(source), "face_index": face.index, "n_faces": face.n_faces}
        start = time.perf_counter()
        try:
            bg = None
            if job.editor.needs_bg:
                bg = job.bg_condition(face.aligned)
                save_image(bg, job.run_dir / crop_dir / f"bg.{job.crop_format}")
            outputs = job.editor.run(face.aligned, pending, bg=bg)
        except Exception as err:  # noqa: BLE001
            detail = traceback.format_exception_only(type(err), err)[-1].strip()
            records += _fail(entry, pending, f"editor {job.editor.name} failed: {detail}", fid, **common)
            continue
        per_edit = (time.perf_counter() - start) / len(pending)
        measured = _measure(job, face.aligned, pending, [o.image for o in outputs])
        for edit, edited, metrics in zip(pending, outputs, measured, strict=True):
            out = edited.image
            crop = crop_dir / f"{edit.slug}.{job.crop_format}"
            photo = Path("photos") / fid / f"{edit.slug}.{job.photo_format}"
            save_image(out, job.run_dir / crop)
            save_image(paste_back(face.photo, face.aligned, out), job.run_dir / photo)
            records.append(Record(entry.path.name, fid, entry.group, dict(edit.values), edit.label, OK,
                                  crop=str(crop), photo=str(photo), seconds=round(per_edit, 5),
                                  extra={"placements": job.plan.placements(edit), "editor": job.editor.name,
                                         **edited.details, **({"metrics": metrics} if metrics else {})}, **common))
    return records


def _measure(job: SweepJob, face: AlignedFace, edits: Sequence[AUEdit], outputs) -> list[dict]:
    """Metrics per edit (scored against the editor's true landmark motion when it knows it), or empty
    dicts without a measurer; a measuring failure is recorded, never raised."""
    if job.measurer is None:
        return [{} for _ in edits]
    try:
        truth = [job.editor.landmark_motion(face, edit) for edit in edits] if job.editor.lock is None else None
        return job.measurer.measure(face.image, edits, outputs, truth=truth)
    except Exception as err:  # noqa: BLE001
        return [{"status": "failed", "reason": f"measuring failed: {type(err).__name__}: {err}"} for _ in edits]


def _done_keys(manifest: Manifest, entry: FaceEntry) -> frozenset[tuple[str, str]]:
    return frozenset(r.key for r in manifest if r.face_file == entry.path.name and manifest.done(*r.key))


def _face_done(manifest: Manifest, entry: FaceEntry, plan: EditPlan) -> bool:
    ids = {r.face_id for r in manifest if r.face_file == entry.path.name} or {entry.face_id}
    return all(manifest.done(fid, e.label) for fid in ids for e in plan.edits)


_WORKER_JOB: SweepJob | None = None
"""The job of a worker process, sent once when the worker starts (models load once per worker)."""


def _start_worker(job: SweepJob) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job


def _work(entry: FaceEntry, done: frozenset[tuple[str, str]]) -> list[Record]:
    assert _WORKER_JOB is not None
    return process_face(_WORKER_JOB, entry, done)


def run_sweep(job: SweepJob, entries: Sequence[FaceEntry], workers: int = 1, progress: bool = True) -> Manifest:
    """Run (or resume) the sweep into ``job.run_dir``; returns the manifest with every record."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(job.run_dir, recursive=True)  # half-written files of a killed run
    manifest = Manifest(job.run_dir)
    todo = [e for e in entries if not _face_done(manifest, e, job.plan)]
    per_face = len(job.plan.edits)
    bar = tqdm(total=len(entries) * per_face, initial=(len(entries) - len(todo)) * per_face,
               desc=f"edit {job.editor.name}", unit="edit", disable=not progress, dynamic_ncols=True)
    workers = max(1, min(workers, len(todo)))
    if workers == 1:
        for entry in todo:
            manifest.add(process_face(job, entry, _done_keys(manifest, entry)))
            bar.update(per_face)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(job,)) as pool:
            futures = [pool.submit(_work, entry, _done_keys(manifest, entry)) for entry in todo]
            for future in as_completed(futures):
                manifest.add(future.result())
                bar.update(per_face)
    bar.close()
    return manifest

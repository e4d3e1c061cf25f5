"""A few plain functions for scripts and notebooks: load a face, edit it, measure the edit, find a recipe.

    import complexface as cf
    face = cf.load_face("photo.jpg")                    # the largest face (index=1: the second largest)
    smile = cf.edit(face, "AU6+AU12=3+3")               # PIL image: the aligned 512 crop, edited
    photo = cf.edit(face, {"AU12L": 3}, photo=True)     # the full-resolution photo with the edit pasted back
    cf.measure_edit(face, smile)                        # {"requested": ..., "measured": ..., "leakage": ...}
    cf.recipe_for("顔は笑っているけど心の中では怒っている")  # {"id": "anger_masking_smile", ..., "top": [...]}

Heavy parts (the face detector, editors, the measurer, the text model) are made on first use, once per process,
and shared by every call (the app uses them the same way).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from complexface.au import EDITABLE, SAFE_INTENSITY, AUEdit, parse_edit
from complexface.errors import UserError
from complexface.faces.pipeline import Face, FacePipeline

_LOCK = threading.RLock()
"""Guards making the shared objects, and the face detector (MediaPipe graphs are not thread-safe)."""
_MEASURE, _TEXT = threading.Lock(), threading.Lock()
_EDITING: dict[int, threading.Lock] = {}
"""One lock per editor: its per-face caches are not thread-safe, and a slow editor must not hold up another."""
_SHARED: dict[str, object] = {}
EDIT_INFO = "complexface_edit"
"""``Image.info`` key under which ``edit`` records the edit's label (so ``measure`` knows what was asked)."""


class FaceIndexError(UserError, IndexError):
    """A face index beyond the faces found in the photo."""


def _shared(name: str, make):
    with _LOCK:
        if name not in _SHARED:
            _SHARED[name] = make()
        return _SHARED[name]


def face_pipeline() -> FacePipeline:
    """The process's face pipeline (every face of a photo, largest first)."""
    return _shared("pipeline", lambda: FacePipeline(select="all"))


def faces_in(photo: np.ndarray, name: str = "photo") -> list[Face]:
    """Every face of an RGB photo, largest first (NoFaceError when none)."""
    pipeline = face_pipeline()
    with _LOCK:  # MediaPipe graphs are not thread-safe
        return pipeline.faces_in(photo, name)


def load_face(path: str | os.PathLike, index: int = 0) -> Face:
    """The ``index``-th largest face of a photo (0: the largest); ImageError / NoFaceError / FaceIndexError."""
    from complexface.faces.image_io import load_image

    path = Path(path)
    faces = faces_in(load_image(path), path.name)
    if not 0 <= index < len(faces):
        raise FaceIndexError(f"{path.name} has {len(faces)} usable face(s); index must be 0..{len(faces) - 1}, "
                             f"got {index}")
    return faces[index]


def source_hash(face: Face) -> str:
    """A short digest of the source crop's pixels (recorded in exported recipes)."""
    return hashlib.sha256(np.ascontiguousarray(face.aligned.image).tobytes()).hexdigest()[:16]


def editor_named(editor: object = "warp"):
    """An Editor: one of the process (``"warp"``, ``"magicface"``: weights from $MAGICFACE_WEIGHTS and $SD15_DIR,
    else MagicFaceWeightsError naming the files) or an Editor instance as given."""
    if not isinstance(editor, str):
        return editor
    if editor == "warp":
        from complexface.editors.warp import WarpEditor

        return _shared("editor:warp", WarpEditor)
    if editor == "magicface":
        from complexface.editors.magicface import MagicFaceEditor

        return _shared("editor:magicface", lambda: MagicFaceEditor(os.environ.get("MAGICFACE_WEIGHTS"),
                                                                    os.environ.get("SD15_DIR")))
    raise UserError(f"editor must be 'warp', 'magicface' or an Editor, got {editor!r}")


def as_edit(aus: object) -> AUEdit:
    """An AUEdit from an edit string (``"AU6+AU12=3+3"``, ``"AU12L=3"``), a mapping, an AUEdit or a catalog
    recipe id."""
    if isinstance(aus, str) and aus.strip() and aus.strip()[0].isalpha() and not aus.strip().upper().startswith("AU"):
        from complexface.expressions import load_catalog

        catalog = load_catalog()
        if aus.strip() in catalog:
            return catalog[aus.strip()].aus
    return parse_edit(aus)


def edit_crop(face: Face, aus: object, editor: object = "warp") -> np.ndarray:
    """The edited aligned crop as a uint8 array (the zero edit of the warp editor: the source, exactly)."""
    change = as_edit(aus)
    chosen = editor_named(editor)
    with _LOCK:
        lock = _EDITING.setdefault(id(chosen), threading.Lock())
    with lock:
        return chosen.edit(face.aligned, [change])[0]


def edit(face: Face | str | os.PathLike, aus: object, editor: object = "warp", photo: bool = False) -> Image.Image:
    """Edit a face (a Face or a photo path: its largest face) by ``aus`` (an edit string, a mapping or a recipe id).

    Returns the edited aligned crop as a PIL image, or with ``photo=True`` the full-resolution photo with the
    edit pasted back. ``image.info["complexface_edit"]`` holds the edit's label."""
    from complexface.faces.align import paste_back

    face = face if isinstance(face, Face) else load_face(face)
    change = as_edit(aus)
    crop = edit_crop(face, change, editor)
    image = Image.fromarray(paste_back(face.photo, face.aligned, crop) if photo else crop)
    image.info[EDIT_INFO] = change.label
    return image


def default_measurer():
    """The process's EditMeasurer: tracked landmarks, dlib identity on every edit."""
    from complexface.measure.identity import DlibIdentity
    from complexface.measure.metrics import EditMeasurer

    return _shared("measurer", lambda: EditMeasurer(identity=DlibIdentity(), identity_every=1))


def _number(value: object) -> float | None:
    value = float(value)  # type: ignore[arg-type]
    return round(value, 4) if math.isfinite(value) else None


def measure(face: Face, edited: Image.Image | np.ndarray, aus: object = None, measurer: object = None) -> dict:
    """Requested vs measured AU change of an edit of ``face``, leakage (mean |change| of ``leakage_aus``: the AUs
    physically independent of the request), identity distance, nose drift, as a plain dict. ``aus``: what was
    asked (default: the label ``edit`` stored on the image). ``warnings`` lists requests past the calibrated range
    (|intensity| > 5)."""
    if aus is None:
        aus = getattr(edited, "info", {}).get(EDIT_INFO, "neutral")
    change = as_edit(aus)
    out = np.asarray(edited.convert("RGB") if isinstance(edited, Image.Image) else edited)
    from complexface.measure.au_change import leakage_aus

    measurer = measurer or default_measurer()
    with _MEASURE:
        row = measurer.measure(face.aligned.image, [change], [out])[0]
    requested = {k: v for k, v in change.values.items()}
    keys = [*EDITABLE, *sorted({k for k in requested if k not in EDITABLE})]
    result = {
        "status": row.get("status", "failed"), "reason": row.get("reason", ""), "edit": change.label,
        "requested": requested,
        "measured": {k: _number(row[f"d_{k}"]) for k in keys if f"d_{k}" in row},
        "on_target": _number(row.get("on_target", float("nan"))),
        "leakage": _number(row.get("off_target", float("nan"))),
        "leakage_aus": list(leakage_aus(change)),
        "identity_distance": _number(row.get("id_dist", float("nan"))),
        "nose_drift": _number(row.get("nose_len_change", float("nan"))),
        "background_rmse": _number(row.get("bg_rmse", float("nan"))),
        "warnings": [f"{k}={v:g} is beyond +-{SAFE_INTENSITY:g}, the calibrated range: the edit may break"
                     for k, v in requested.items() if abs(v) > SAFE_INTENSITY],
    }
    return result


def retriever():
    """The process's text -> recipe retriever (the bundled MiniLM and catalog)."""
    from complexface.retrieval import RecipeRetriever

    return _shared("retriever", RecipeRetriever)


def recipe_dict(recipe) -> dict:
    """A catalog recipe as a plain dict."""
    return {"id": recipe.id, "name_en": recipe.name_en, "name_ja": recipe.name_ja, "felt": recipe.felt,
            "displayed": recipe.displayed, "aus": dict(recipe.aus.values), "citation": recipe.citation,
            "needs": dict(recipe.needs)}


def recipe_for(text: str, retriever_=None) -> dict:
    """The catalog recipe closest to free English or Japanese text (as generate.py picks it): id, names, felt,
    displayed, aus, score, confidence, language, the matched caption, and ``top``: the best three, each with its
    id, felt and displayed emotion, score and confidence."""
    chosen = (retriever_ or retriever())
    with _TEXT:
        choice = chosen(text)
    top = [{"id": choice.recipe.id, "felt": choice.recipe.felt, "displayed": choice.recipe.displayed,
            "score": round(choice.score, 4), "confidence": round(choice.confidence, 4)}]
    top += [{"id": r["recipe_id"], "felt": r["felt"], "displayed": r["displayed"], "score": r["score"],
             "confidence": r["confidence"]} for r in choice.runner_ups]
    return {**recipe_dict(choice.recipe), "score": round(choice.score, 4), "confidence": round(choice.confidence, 4),
            "language": choice.language, "matched": choice.matched, "top": top[:3]}


def read_recipe_file(path: str | os.PathLike | Mapping) -> AUEdit:
    """The edit of a recipe JSON the app exports (``{"aus": {...}}``; also a plain ``{AU: value}``)."""
    import json

    from complexface.au import AUError

    try:
        data = path if isinstance(path, Mapping) else json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AUError(f"cannot read the recipe file {path}: {err}") from None
    aus = data.get("aus", data) if isinstance(data, Mapping) else None
    if not isinstance(aus, Mapping):
        raise AUError(f"{path} is not a recipe: expected {{\"aus\": {{\"AU12\": 3, ...}}}}")
    return parse_edit(dict(aus))

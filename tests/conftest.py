"""Shared fixtures: the bundled faces, one face pipeline per session, bad-input photos."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

# W&B never reaches the network in tests and keeps its files out of the user's home.
_WANDB_HOME = Path(tempfile.mkdtemp(prefix="complexface-wandb-"))
atexit.register(shutil.rmtree, _WANDB_HOME, ignore_errors=True)  # nothing left in /tmp after the session
os.environ["WANDB_MODE"] = "offline"
for _var, _sub in (("WANDB_DIR", "runs"), ("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"),
                   ("WANDB_CONFIG_DIR", "config")):
    os.environ[_var] = str(_WANDB_HOME / _sub)
# Hugging Face libraries: no hub, caches in the same temporary directory.
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(_WANDB_HOME / "hf"))

from complexface.faces import AlignedFace, Face, FacePipeline, demo_faceset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def compose_config(name: str, overrides: list[str], return_hydra_config: bool = False):
    """The project's real Hydra config ``conf/<name>.yaml`` with ``overrides`` (as the entry scripts see it)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=return_hydra_config)


@pytest.fixture(scope="session")
def pipeline() -> FacePipeline:
    return FacePipeline()


@pytest.fixture(scope="session")
def aligned_faces(pipeline: FacePipeline) -> dict[str, AlignedFace]:
    """Every bundled portrait, detected and aligned once, by face id."""
    return {e.face_id: pipeline(e.path)[0].aligned for e in demo_faceset()}


@pytest.fixture(scope="session")
def demo_face(pipeline: FacePipeline) -> Face:
    """The first bundled portrait (001.jpg), detected and aligned."""
    return pipeline(demo_faceset()[0].path)[0]


@pytest.fixture(scope="session")
def demo_photo() -> np.ndarray:
    from complexface.faces import load_image

    return load_image(demo_faceset()[0].path)


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Write the bad-input corpus into ``folder``; returns file name -> expected outcome.

    Outcome "ok" means the photo must be edited normally; anything else is a substring of the
    reason that must be recorded for it.
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    source = Image.open(demo_faceset()[0].path).convert("RGB")
    rgb = np.asarray(source)
    expected: dict[str, str] = {}

    source.convert("L").save(folder / "gray.png")
    expected["gray.png"] = "ok"
    rgba = source.convert("RGBA")
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :60] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(folder / "rgba.png")
    expected["rgba.png"] = "ok"
    source.convert("CMYK").save(folder / "cmyk.jpg")
    expected["cmyk.jpg"] = "ok"
    gray16 = (np.asarray(source.convert("L")).astype(np.uint16) * 257)
    Image.fromarray(gray16).save(folder / "gray16.png")
    expected["gray16.png"] = "ok"
    # stored rotated 90 degrees with an EXIF tag that says how to turn it upright
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    source.transpose(Image.Transpose.ROTATE_90).save(folder / "exif_rotated.jpg", exif=exif)
    expected["exif_rotated.jpg"] = "ok"
    source.save(folder / "photo.webp", quality=90)
    expected["photo.webp"] = "ok"
    w, h = source.size
    pair = Image.new("RGB", (w + w // 2, h), "white")
    pair.paste(source, (0, 0))
    pair.paste(source.resize((w // 2, h // 2)), (w, h // 4))
    pair.save(folder / "two_faces.jpg")
    expected["two_faces.jpg"] = "ok"

    source.save(folder / "truncated.jpg")
    (folder / "truncated.jpg").write_bytes((folder / "truncated.jpg").read_bytes()[:5000])
    expected["truncated.jpg"] = "corrupt or truncated"
    (folder / "not_an_image.jpg").write_text("this is not a photo\n")
    expected["not_an_image.jpg"] = "not an image Pillow can read"
    (folder / "empty.png").write_bytes(b"")
    expected["empty.png"] = "empty file"
    gradient = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))
    Image.fromarray(np.dstack([gradient, gradient[::-1], np.full_like(gradient, 90)])).save(folder / "no_face.png")
    expected["no_face.png"] = "no face found"
    Image.fromarray(rgb[:20, :20]).save(folder / "tiny.png")
    expected["tiny.png"] = "only 20x20 px"
    return expected


TRAIN_FACES = "faceset.only=[001.jpg,006.jpg,014.jpg,021.jpg,047.jpg,050.jpg,072.jpg,080.jpg]"
TRAIN_RECIPES = ("anger_masking_smile", "felt_smile", "suppressed_sadness")


@pytest.fixture(scope="session")
def study_run_dir(tmp_path_factory) -> Path:
    """The edit run the study tests build their studies from (``tests.study_helpers.edit_run``), made once."""
    from tests.study_helpers import edit_run

    return edit_run(tmp_path_factory.mktemp("study_edit_run"))


@pytest.fixture(scope="session")
def catalog_dataset(tmp_path_factory) -> Path:
    """A real catalog dataset: 8 faces x 3 recipes, edited by the warp editor (split by identity)."""
    import edit

    run_dir = tmp_path_factory.mktemp("train_data")
    cfg = compose_config("edit", [TRAIN_FACES, "expression=catalog", f"expression.only=[{','.join(TRAIN_RECIPES)}]",
                                  "dataset=imagefolder", "measure=off", "workers=1", "progress=false", "logger=none"])
    edit.edit(cfg, run_dir)
    return run_dir / "dataset"


TRAINED_CLIP = ["trainer.max_epochs=12", "data.batch_size=16", "callbacks.early_stopping.patience=100",
                "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                "trainer.log_every_n_steps=1", "threads=1"]
"""The real expression CLIP config, shrunk to train in seconds on the dataset above."""


@pytest.fixture(scope="session")
def trained_expression_clip(catalog_dataset, tmp_path_factory):
    """``(cfg, metrics, run dir)`` of one ``train.train`` run of the default model on ``catalog_dataset``."""
    import time

    import train

    run_dir = tmp_path_factory.mktemp("trained_clip")
    cfg = compose_config("train", [f"data.root={catalog_dataset}", *TRAINED_CLIP])
    start = time.perf_counter()
    metrics = train.train(cfg, run_dir)
    metrics["seconds"] = time.perf_counter() - start
    return cfg, metrics, run_dir

"""The MagicFace reimplementation against the original code's outputs on tiny random weights
(tests/fixtures/magicface-tiny, see its FIXTURE.md), plus loading, editor and edit.py checks."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import edit
from complexface.au import AUEdit, from_names_values
from complexface.editors.magicface import MagicFaceEditor, MagicFacePipeline, MagicFaceWeightsError, au_matrix
from complexface.editors.magicface.attention import transformer_blocks
from complexface.editors.magicface.loading import MAGICFACE_REPO, SD15_REPO
from complexface.errors import exit_on_user_error
from complexface.faces.align import AlignedFace
from complexface.runs import MANIFEST
from tests.conftest import compose_config

FIXTURE = Path(__file__).parent / "fixtures" / "magicface-tiny"
EXPECTED = FIXTURE / "expected"
WEIGHTS, BASE = FIXTURE / "magicface", FIXTURE / "sd15"
META = json.loads((EXPECTED / "meta.json").read_text())
CASES = list(META["cases"])
STEPS = len(META["timesteps"])
pytestmark = pytest.mark.filterwarnings(  # diffusers' UniPC on numpy 2
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
TOLERANCE = 1e-4
"""max|a - b| / max|b| per tensor; the original itself varies by up to 6e-6 (FIXTURE.md)."""


def rel(actual, expected) -> float:
    actual = np.asarray(torch.as_tensor(actual).float().cpu(), np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def inputs(pair: str) -> tuple[Path, Path]:
    return FIXTURE / "inputs" / f"{pair}_img.png", FIXTURE / "inputs" / f"{pair}_bg.png"


@pytest.fixture(scope="module")
def pipe() -> MagicFacePipeline:
    return MagicFacePipeline.from_pretrained(WEIGHTS, BASE)


@pytest.fixture(scope="module")
def init_noise() -> torch.Tensor:
    return torch.from_numpy(np.load(EXPECTED / "common.npz")["init_noise"])


def check_trajectory(steps, images: np.ndarray, case: str, k: int = 0, batch: int = 1) -> None:
    """Edit ``k`` of a ``batch``: every step's eps (both halves), guided eps, latents, and the image."""
    ref = np.load(EXPECTED / f"{case}.npz")
    assert len(steps) == STEPS and [s.timestep for s in steps] == META["timesteps"]
    for i, step in enumerate(steps):
        raw = torch.stack([step.noise_pred[k], step.noise_pred[batch + k]])
        assert rel(raw, ref["step_model_output"][i]) < TOLERANCE, (case, i, "eps")
        assert rel(step.guided[k:k + 1], ref["step_guided_eps"][i]) < TOLERANCE, (case, i, "guided eps")
        assert rel(step.latents[k:k + 1], ref["step_latents_out"][i]) < TOLERANCE, (case, i, "latents")
    assert rel(steps[-1].latents[k:k + 1], ref["final_latents"]) < TOLERANCE
    assert rel(images[k:k + 1], ref["image_np"]) < TOLERANCE
    assert np.abs(np.round(images[k] * 255).astype(int) - ref["image_uint8"]).max() <= 1


def test_prompt_scheduler_and_identity_captures_match_the_original(pipe):
    common = np.load(EXPECTED / "common.npz")
    assert rel(pipe.encode_prompt(), common["prompt_embeds"]) < TOLERANCE
    pipe.scheduler.set_timesteps(STEPS)
    assert pipe.scheduler.timesteps.tolist() == common["timesteps"].tolist()
    assert rel(pipe.scheduler.sigmas, common["sigmas"]) < 1e-6
    assert pipe.resolution == 128
    for pair in META["pairs"]:
        ref = np.load(EXPECTED / f"{pair}.npz")
        face = pipe.encode_face(*inputs(pair))
        assert rel(face.source_latents, ref["source_latents"]) < TOLERANCE
        assert rel(face.bg_latents, ref["bg_latents"]) < TOLERANCE
        assert len(face.captures) == len(META["id_captures"]) == 16
        for i, capture in enumerate(face.captures):
            assert rel(capture, ref[f"id_capture_{i:02d}"]) < TOLERANCE, (pair, i)


@pytest.mark.parametrize("case", CASES)
def test_each_case_matches_the_original_step_by_step(pipe, init_noise, case):
    steps = []
    out = pipe(*inputs(case.split("__")[0]), META["cases"][case]["au"], num_inference_steps=STEPS,
               latents=init_noise, output_type="np", callback=steps.append)
    check_trajectory(steps, out.images, case)


@pytest.mark.parametrize("pair", META["pairs"])
def test_a_batch_of_edits_matches_the_original_per_edit(pipe, init_noise, pair):
    cases = [c for c in CASES if c.startswith(pair)]
    steps = []
    out = pipe(*inputs(pair), [META["cases"][c]["au"] for c in cases], num_inference_steps=STEPS,
               latents=init_noise, output_type="np", callback=steps.append)
    assert out.images.shape == (len(cases), 128, 128, 3)
    for k, case in enumerate(cases):
        check_trajectory(steps, out.images, case, k, len(cases))


def test_first_denoiser_call_internals(pipe, init_noise):
    """Time + AU embedding and every transformer block's attn1/output of the AU branch at t=999."""
    ref = np.load(EXPECTED / "debug_pairA_047__au4_p3_step0.npz")
    seen: dict[str, torch.Tensor] = {}

    def keep(name):
        return lambda module, args, output: seen.setdefault(name, output)

    denoiser = pipe.denoiser
    handles = [denoiser.time_embedding.register_forward_hook(keep("time")),
               denoiser.class_embedding.register_forward_hook(keep("au"))]
    for i, block in enumerate(transformer_blocks(denoiser)):
        handles += [block.attn1.register_forward_hook(keep(f"attn1_{i:02d}")),
                    block.register_forward_hook(keep(f"block_{i:02d}"))]
    try:
        pipe(*inputs("pairA_047"), {"AU4": 3}, num_inference_steps=1, latents=init_noise, output_type="np")
    finally:
        for handle in handles:
            handle.remove()
    assert rel(seen["time"], ref["time_embedding_out"]) < TOLERANCE
    assert rel(seen["au"], ref["au_aug_mlp_out"]) < TOLERANCE
    for i in range(16):
        own = ref[f"block_out_{i:02d}"].shape[1]
        assert rel(seen[f"attn1_{i:02d}"][:1], ref[f"attn1_out_{i:02d}"][:, :own]) < TOLERANCE, i
        assert rel(seen[f"block_{i:02d}"][:1], ref[f"block_out_{i:02d}"]) < TOLERANCE, i


def test_own_token_queries_equal_full_concat_attention(pipe, init_noise):
    def run() -> np.ndarray:
        return pipe(*inputs("pairB_001"), [{"AU4": 3}, {"AU6": 2, "AU12": 3}], num_inference_steps=2,
                    latents=init_noise, output_type="np").images

    own = run()
    try:
        for processor in pipe.reference.processors:
            processor.own_queries = False
        full = run()
    finally:
        for processor in pipe.reference.processors:
            processor.own_queries = True
    assert rel(own, full) < 1e-5


def test_au_inputs_in_every_accepted_form():
    vector = [0.0] * 12
    vector[4], vector[6] = 3.0, 3.0
    for form in (vector, {"AU6": 3, "AU12": 3}, "AU6+AU12=3+3", AUEdit({"AU12": 3, "AU6": 3}),
                 from_names_values("AU6+AU12", "3+3"), np.array(vector)):
        assert au_matrix(form).tolist() == [vector]
    assert au_matrix(["AU4=2", {"AU12": 1}, [0] * 12]).shape == (3, 12)
    with pytest.raises(ValueError, match="12 values"):
        au_matrix([1.0, 2.0])


def test_pil_output_from_arrays(pipe):
    img, bg = (np.asarray(Image.open(p).convert("RGB")) for p in inputs("pairA_047"))
    out = pipe(img, Image.fromarray(bg), "AU12=2", num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    assert len(out.images) == 1 and out.images[0].size == (128, 128) and out.images[0].mode == "RGB"


def fixture_face(pair: str, size: int = 128) -> tuple[AlignedFace, np.ndarray]:
    """A crop and its bg from the fixture (no landmarks: the editor only needs them to make a bg)."""
    img, bg = (np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
               for p in inputs(pair))
    return AlignedFace(img, None, np.eye(2, 3)), bg  # type: ignore[arg-type]


def test_editor_batches_equal_one_by_one_and_reproduce_the_original():
    face, bg = fixture_face("pairA_047")
    edits = [AUEdit({}), AUEdit({"AU4": 3}), AUEdit({"AU6": 2, "AU12": 3})]
    editor = MagicFaceEditor(WEIGHTS, BASE, steps=STEPS, batch_size=2, device="cpu")  # the parity is in float32
    pickle.loads(pickle.dumps(editor))  # picklable before loading ...
    batched = editor.edit(face, edits, bg=bg)
    assert editor.pipe.dtype == torch.float32 and editor.pipe.device.type == "cpu"
    pickle.loads(pickle.dumps(editor))  # ... and after
    editor.batch_size = 1
    single = [editor.edit(face, [e], bg=bg)[0] for e in edits]
    for a, b, case in zip(batched, single, ("au_zeros", "au4_p3", "au6_p2_au12_p3"), strict=True):
        assert a.dtype == np.uint8 and a.shape == (128, 128, 3)
        assert np.abs(a.astype(int) - b).max() <= 1
        original = np.load(EXPECTED / f"pairA_047__{case}.npz")["image_uint8"]
        assert np.abs(a.astype(int) - original).max() <= 1  # seed 424 = the original's noise
    face512, bg512 = fixture_face("pairA_047", 512)
    assert editor.edit(face512, edits[1:2], bg=bg512)[0].shape == (512, 512, 3)


def test_editor_makes_the_bg_itself_when_not_given(demo_face):
    editor = MagicFaceEditor(WEIGHTS, BASE, steps=1)
    (out,) = editor.edit(demo_face.aligned, [AUEdit({"AU12": 2})])
    assert out.shape == demo_face.aligned.image.shape == (512, 512, 3) and out.dtype == np.uint8


def test_edit_py_with_the_magicface_editor(tmp_path):
    cfg = compose_config("edit", ["editor=magicface", f"editor.weights={WEIGHTS}", f"editor.base_model={BASE}", "editor.steps=4",
                        "face_pipeline.crop_size=128", "faceset.limit=1", "expression=custom",
                        "expression.edits=[AU4:3]", "measure=off", "logger=none", "workers=1", "progress=false"])
    summary = edit.edit(cfg, tmp_path)
    assert summary["ok"] == 1 and summary["failed"] == 0
    (record,) = [json.loads(line) for line in (tmp_path / MANIFEST).read_text().splitlines()]
    assert record["label"] == "AU4=3" and record["extra"]["editor"] == "magicface"
    crop = np.asarray(Image.open(tmp_path / record["crop"]))
    assert crop.shape == (128, 128, 3)
    assert (tmp_path / "crops/001/bg.png").exists() and (tmp_path / record["photo"]).exists()
    assert (tmp_path / "grids/faces/001.jpg").exists() and summary["n_group_grids"] == 1


@pytest.fixture
def weights_copy(tmp_path) -> Path:
    return Path(shutil.copytree(WEIGHTS, tmp_path / "magicface"))


def rewrite_denoiser(folder: Path, change) -> None:
    path = folder / "denoising_unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.pop("au_aug_mlp.weight"), "missing: au_aug_mlp.weight"),
    (lambda t: t.update({"conv_in.weight": t["conv_in.weight"][:, :4].clone()}),
     "wrong shape: conv_in.weight [8, 4, 3, 3] (expected [8, 8, 3, 3])"),
    (lambda t: t.update({"extra.weight": torch.zeros(1)}), "unexpected: extra.weight"),
])
def test_strict_loading_names_what_does_not_fit(weights_copy, change, message):
    rewrite_denoiser(weights_copy, change)
    for load in (lambda: MagicFacePipeline.from_pretrained(weights_copy, BASE),
                 lambda: MagicFaceEditor(weights_copy, BASE)):
        with pytest.raises(MagicFaceWeightsError, match="denoising_unet") as err:
            load()
        assert message in str(err.value)


def test_a_missing_file_is_listed(weights_copy):
    (weights_copy / "ID_enc" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MagicFaceWeightsError) as err:
        MagicFaceEditor(weights_copy, BASE)
    assert "MISSING ID_enc/diffusion_pytorch_model.safetensors" in str(err.value)
    assert "ok      denoising_unet/config.json" in str(err.value)


def test_missing_weights_are_one_user_error(monkeypatch, capsys):
    monkeypatch.delenv("MAGICFACE_WEIGHTS", raising=False)
    monkeypatch.delenv("SD15_DIR", raising=False)
    cfg = compose_config("edit", ["editor=magicface", "faceset.limit=1", "logger=none", "workers=1", "progress=false"])
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(lambda: edit.build(cfg, Path("unused")))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: editor: MagicFace weights not found") and "Traceback" not in err
    for expected in (MAGICFACE_REPO, SD15_REPO, "ID_enc/diffusion_pytorch_model.safetensors",
                     "denoising_unet/config.json", "vae/config.json", "text_encoder/config.json", "$MAGICFACE_WEIGHTS"):
        assert expected in err


def test_the_download_hints_parse_with_the_hf_cli(weights_copy, monkeypatch):
    """Each printed ``hf download`` command, run through the real CLI parser, asks for every pattern it names."""
    import shlex

    import typer
    from huggingface_hub.cli import download as hf_download
    from typer.testing import CliRunner

    asked = []
    monkeypatch.setattr(hf_download, "snapshot_download", lambda **kw: asked.append(kw) or "")
    (weights_copy / "ID_enc" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MagicFaceWeightsError) as err:
        MagicFaceEditor(weights_copy, weights_copy / "no-sd15")
    hints = [line.split("get them with: hf download ", 1)[1] for line in str(err.value).splitlines()
             if "get them with: hf download" in line]
    assert len(hints) == 2
    app = typer.Typer()
    app.command()(hf_download.download)
    for hint in hints:
        args = shlex.split(hint.replace("<dir>", "out"))
        assert CliRunner().invoke(app, args).exit_code == 0
        patterns = [args[i + 1] for i, a in enumerate(args) if a == "--include"]
        assert asked[-1]["allow_patterns"] == patterns and len(patterns) >= 2

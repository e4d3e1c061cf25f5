"""Benchmark the MagicFace editor against the original workflow's shape (a plain script, not a test).

One face, an 11-edit sweep (AU4 at -5..5). Two workflows, both through this package's pipeline:
- original shape: per edit, load every model (fp32), run batch 1 (the two guidance halves), the
  ID encoder per edit, and the reference attention as the original computes it (queries for
  own + reference tokens, then a slice);
- ours: MagicFaceEditor: load once, the ID encoder once per face, all edits batched
  (``--batch-size``), queries for own tokens only with cached reference keys/values; bf16 (fp16
  without bf16) + SDPA on CUDA, fp32 on CPU.
Both start every edit from the same seeded noise, so on fp32 their images agree (printed). A third
row, the original shape loaded once, separates the cost of reloading from that of batch 1 + full
attention.

    PYTHONPATH=. python bench/bench_magicface.py                 # CPU, tiny fixture weights, 128 px
    PYTHONPATH=. python bench/bench_magicface.py --device cuda   # SD 1.5-sized random weights, 512 px

``--full-size`` (the default on CUDA) builds SD 1.5-shaped models with random weights in code
(UNets 320-640-1280-1280, CLIP ViT-L/14 text tower, SD VAE; nothing is downloaded), writes them
in MagicFace's checkpoint layout to a temporary folder (~7.7 GB, fp32), and loads them from there
like real weights. Reported: median seconds per sweep and per edit, the speed-up, peak GPU memory
and achieved TFLOP/s: the FLOPs of ours (torch's FlopCounterMode on a 1- and a 2-step edit,
extrapolated to ``--steps``) x edits / seconds, i.e. useful work per second for every row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPTextConfig, CLIPTextModel

from complexface.au import AUEdit
from complexface.editors.magicface import MagicFaceEditor, MagicFacePipeline
from complexface.editors.magicface.loading import AU_DIM, AU_KEY, CLASS_KEY
from complexface.faces.align import AlignedFace

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "magicface-tiny"
SEED = 424
SD15_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280], "norm_num_groups": 32, "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SD15_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
    "block_out_channels": [128, 256, 512, 512], "norm_num_groups": 32, "scaling_factor": 0.18215,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD15_TEXT = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                           projection_dim=768)


def write_full_size(root: Path, device: torch.device) -> tuple[Path, Path]:
    """Random SD 1.5-shaped weights in MagicFace's layout: ``root/magicface``, ``root/sd15``.

    The tokenizer and scheduler config are the fixture's (its token ids fit CLIP's vocabulary; its
    scheduler file has exactly the fields of SD 1.5's).
    """
    weights, base = root / "magicface", root / "sd15"
    torch.manual_seed(0)
    for name, in_channels, au in (("ID_enc", 4, False), ("denoising_unet", 8, True)):
        folder = weights / name
        folder.mkdir(parents=True)
        extra = dict(class_embed_type="simple_projection", projection_class_embeddings_input_dim=AU_DIM) if au else {}
        with torch.device(device):
            unet = UNet2DConditionModel(**{**SD15_UNET, "in_channels": in_channels}, **extra)
        state = {(AU_KEY + k[len(CLASS_KEY):] if k.startswith(CLASS_KEY) else k): v.contiguous().cpu()
                 for k, v in unet.state_dict().items()}
        save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
        config = {"_class_name": "UNet2DConditionModel", **SD15_UNET, "in_channels": in_channels}
        (folder / "config.json").write_text(json.dumps(config, indent=1))
        del unet, state
    write_sd15_base(base, device)
    return weights, base


def write_sd15_base(base: Path, device: torch.device) -> Path:
    """Random SD 1.5-shaped ``vae/`` and ``text_encoder/`` in ``base``, with the fixture's tokenizer and scheduler."""
    with torch.device(device):
        vae, text = AutoencoderKL(**SD15_VAE), CLIPTextModel(SD15_TEXT)
    vae.save_pretrained(base / "vae")
    text.save_pretrained(base / "text_encoder")
    for part in ("tokenizer", "scheduler"):
        shutil.copytree(FIXTURE / "sd15" / part, base / part)
    return base


def face_inputs(size: int) -> tuple[AlignedFace, np.ndarray]:
    """The fixture's crop and bg at ``size`` (the editor needs no landmarks when given a bg)."""
    img, bg = (np.asarray(Image.open(FIXTURE / "inputs" / f"pairA_047_{kind}.png").convert("RGB")
                          .resize((size, size), Image.Resampling.LANCZOS)) for kind in ("img", "bg"))
    return AlignedFace(img, None, np.eye(2, 3)), bg  # type: ignore[arg-type]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def original_workflow(weights: Path, base: Path, face: AlignedFace, bg: np.ndarray, edits: list[AUEdit],
                      steps: int, device: torch.device, reload: bool = True) -> list[np.ndarray]:
    """Per edit: (re)load everything in fp32, the whole pipeline at batch 1, full reference attention."""
    outputs = []
    pipe = None
    for edit in edits:
        if reload or pipe is None:
            pipe = None  # free the previous copy before loading the next
            pipe = MagicFacePipeline.from_pretrained(weights, base, torch_dtype=torch.float32, device=device,
                                                     own_queries=False)
        result = pipe(face.image, bg, edit, num_inference_steps=steps, output_type="np",
                      generator=torch.Generator("cpu").manual_seed(SEED))
        outputs.append((result.images[0] * 255).round().astype(np.uint8))
    return outputs


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def edit_flops(editor: MagicFaceEditor, face: AlignedFace, bg: np.ndarray, steps: int) -> float:
    """FLOPs of one edit of a face at ``steps`` steps, per-face work (VAE encodes, ID encoder) included."""
    counts = []
    saved = editor.steps
    for n in (1, 2):
        editor.steps = n
        with FlopCounterMode(display=False) as counter:
            editor.edit(face, [AUEdit({"AU4": 1})], bg=bg)
        counts.append(counter.get_total_flops())
    editor.steps = saved
    return counts[0] + (steps - 1) * (counts[1] - counts[0])


def main() -> None:
    parser = argparse.ArgumentParser(description="Time MagicFace: original workflow shape vs this editor.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--full-size", action=argparse.BooleanOptionalAction, default=None,
                        help="SD 1.5-sized random weights at 512 px (default: on for CUDA, off for CPU)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=None, help="timed sweeps per workflow (default 3 CPU, 1 CUDA)")
    parser.add_argument("--batch-size", type=int, default=11, help="edits per batch for ours")
    parser.add_argument("--edits", type=int, default=11, help="sweep length (AU4 from -5 upwards)")
    parser.add_argument("--no-original", action="store_true", help="time only ours")
    args = parser.parse_args()
    device = torch.device(args.device)
    full_size = device.type == "cuda" if args.full_size is None else args.full_size
    repeats = args.repeats or (1 if full_size else 3)
    edits = [AUEdit({"AU4": s}) for s in range(-5, 6)][: args.edits]
    with tempfile.TemporaryDirectory(prefix="magicface-bench-") as tmp:
        if full_size:
            start = time.perf_counter()
            weights, base = write_full_size(Path(tmp), device)
            print(f"wrote SD 1.5-sized random weights in {time.perf_counter() - start:.0f} s")
        else:
            weights, base = FIXTURE / "magicface", FIXTURE / "sd15"

        def ours() -> tuple[float, list[np.ndarray]]:
            editor = MagicFaceEditor(weights, base, steps=args.steps, batch_size=args.batch_size, device=str(device))
            load, _ = timed(lambda: editor.pipe, device)
            return load, editor.edit(face, edits, bg=bg)

        probe = MagicFaceEditor(weights, base, steps=args.steps, device=str(device))
        face, bg = face_inputs(probe.pipe.resolution)
        flops = edit_flops(probe, face, bg, args.steps)
        print(f"{probe.pipe.resolution} px, {args.steps} steps, {len(edits)} edits, device {device}, "
              f"dtype ours {probe.pipe.dtype}, torch threads {torch.get_num_threads()}; "
              f"{flops / 1e12:.3f} TFLOP per edit")
        del probe
        ours()  # warm-up
        runs: dict[str, list[float]] = {"ours": [], "ours, excluding the one load": [], "original shape": [],
                                        "original shape, loaded once": []}
        peaks: dict[str, float] = {}
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds, (load, mine) = timed(ours, device)
            runs["ours"].append(seconds)
            runs["ours, excluding the one load"].append(seconds - load)
            if device.type == "cuda":
                peaks["ours"] = torch.cuda.max_memory_allocated(device) / 2**30
            if args.no_original:
                continue
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds, theirs = timed(lambda: original_workflow(weights, base, face, bg, edits, args.steps, device),
                                    device)
            runs["original shape"].append(seconds)
            if device.type == "cuda":
                peaks["original shape"] = torch.cuda.max_memory_allocated(device) / 2**30
            seconds, _ = timed(lambda: original_workflow(weights, base, face, bg, edits, args.steps, device, False),
                               device)
            runs["original shape, loaded once"].append(seconds)
            diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(mine, theirs, strict=True))
        print(f"{'workflow':<30} {'s/sweep':>9} {'s/edit':>8} {'TFLOP/s':>8} {'peak GiB':>9}")
        for name, values in runs.items():
            if values:
                sweep = statistics.median(values)
                peak = f"{peaks[name]:9.1f}" if name in peaks else f"{'-':>9}"
                print(f"{name:<30} {sweep:9.3f} {sweep / len(edits):8.3f} "
                      f"{flops * len(edits) / sweep / 1e12:8.3f} {peak}")
        if runs["original shape"]:
            ratio = statistics.median(runs["original shape"]) / statistics.median(runs["ours"])
            print(f"speed-up (median sweep, loads included): {ratio:.1f}x; "
                  f"largest pixel difference between the workflows: {diff} levels")


if __name__ == "__main__":
    main()

"""Training throughput (samples/s) of the contrastive modules on a CPU, tiny settings.

    python bench/bench_train.py [--data <edit run>/dataset] [--steps 30] [--threads 1] [--warmup 3] [--repeats 5]

Without --data it builds a small real dataset first (8 faces x 3 recipes, warp editor); the CLIP and
SD rows use the tests' tiny random models (their cost is mostly loading and resizing the 512 px crops). Each row
composes the real train config, runs ``--steps`` optimizer steps (no validation, no logger) and
reports samples/s over the steps after the first (feature extraction is cached beforehand).

A second table compares the SD LoRA module (under its Lightning Trainer) with the training loop of diffusers'
examples/text_to_image/train_text_to_image_lora.py written in plain PyTorch, on the same tiny model, batch size
and pre-loaded tensors (data loading timed in neither; the reference tokenizes in preprocessing and runs the
frozen text encoder and VAE every step, as the script does; ours caches each caption's text-encoder states and
each image's VAE posterior, so the timed steps look like a second epoch; further rows turn the caches off):
``--warmup`` untimed steps, then ``--steps`` timed ones, median samples/s of ``--repeats``.

    PYTHONPATH=. python bench/bench_train.py --device cuda --full-size --precision bf16-mixed --batch 8

runs only that comparison, at 512 px on SD 1.5-shaped random weights built in code (UNet 320-640-1280-1280,
CLIP ViT-L/14 text tower, SD VAE; ~4 GB fp32 in a temporary folder, nothing downloaded), and adds the peak
GPU memory of each. Both loops use the same precision policy: fp32 weights, ``torch.autocast`` under a
``*-mixed`` precision (the diffusers script instead casts the frozen weights to the half type).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from bench.bench_magicface import FIXTURE, SD15_UNET, sync, write_sd15_base
from tests.test_train import build_tiny_clip, build_tiny_sd

ROOT = Path(__file__).resolve().parent.parent


class StepTimer(L.Callback):
    """Seconds and samples from the end of the first ``skip`` steps to the end of the last."""

    def __init__(self, skip: int = 1) -> None:
        self.start: float | None = None
        self.skip, self.seen, self.samples = skip, 0, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        sync(module.device)
        self.seen += 1
        if self.seen == self.skip:
            self.start = time.perf_counter()
        elif self.seen > self.skip:
            self.samples += len(batch["text"])
        self.end = time.perf_counter()


def autocast(device: torch.device, precision: str):
    """The autocast context of a Lightning ``precision`` string (a no-op for ``32-true``)."""
    dtype = {"bf16-mixed": torch.bfloat16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


class Batches:
    """Pre-loaded batches as a plain iterable (so the data loader is not timed)."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def preloaded_batches(datamodule, batch: int, count: int) -> list[dict]:
    """``count`` batches of exactly ``batch`` training items (cycling over the split), loaded once."""
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    items = [dataset[i] for i in range(len(dataset))]
    out = []
    for k in range(count):
        chosen = [items[(k * batch + j) % len(items)] for j in range(batch)]
        out.append({"pixel_values": torch.stack([c["pixel_values"] for c in chosen]),
                    "text": [c["text"] for c in chosen], "file": [c["file"] for c in chosen]})
    return out


def ours_sd_lora(cfg, batches: list[dict], args, work: Path) -> tuple[float, float | None]:
    """samples/s of SDLoRA under a Lightning Trainer over ``batches`` (after ``--warmup`` steps), peak GPU GB."""
    torch.manual_seed(0)
    module = instantiate(cfg.model, _convert_="all")
    timer = StepTimer(skip=args.warmup)
    trainer = L.Trainer(accelerator="gpu" if args.device == "cuda" else "cpu", devices=1, precision=args.precision,
                        max_steps=len(batches), limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                        default_root_dir=str(work))
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(module, train_dataloaders=Batches(batches))
    return timer.samples / (timer.end - timer.start), peak_memory_gb(device)


def reference_sd_lora(cfg, batches: list[dict], args) -> tuple[float, float | None]:
    """samples/s of the training loop of diffusers' examples/text_to_image/train_text_to_image_lora.py.

    Plain PyTorch (no accelerate: one device): frozen vae / text_encoder / unet, peft LoRA on the UNet attention
    (same rank, alpha, targets, gaussian init), AdamW over the LoRA parameters with a constant LR scheduler,
    captions tokenized in preprocessing (as the script's ``preprocess_train``), min-SNR weighting as its
    ``--snr_gamma`` branch when the config sets one.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig
    from transformers import CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    path, m, warmup, device = str(cfg.model.pretrained), cfg.model, args.warmup, torch.device(args.device)
    noise_scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler")
    tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    unet.to(device)
    vae.to(device)
    text_encoder.to(device)
    unet.add_adapter(LoraConfig(r=m.rank, lora_alpha=m.alpha, init_lora_weights="gaussian",
                                target_modules=list(m.targets)))
    lora_layers = filter(lambda p: p.requires_grad, unet.parameters())
    optimizer = torch.optim.AdamW(lora_layers, lr=m.lr)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer)
    data = [{"pixel_values": b["pixel_values"],
             "input_ids": tokenizer(b["text"], max_length=tokenizer.model_max_length, padding="max_length",
                                    truncation=True, return_tensors="pt").input_ids} for b in batches]
    snr_gamma = m.get("snr_gamma")
    unet.train()
    samples, start = 0, None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step, batch in enumerate(data):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, args.precision):
            loss = reference_loss(batch, vae, text_encoder, unet, noise_scheduler, snr_gamma)
        loss.backward()
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()
        sync(device)
        if step + 1 == warmup:
            start = time.perf_counter()
        elif step + 1 > warmup:
            samples += len(batch["pixel_values"])
    return samples / (time.perf_counter() - start), peak_memory_gb(device)


def reference_loss(batch: dict, vae, text_encoder, unet, noise_scheduler, snr_gamma: float | None) -> torch.Tensor:
    """The loss of one step of diffusers' train_text_to_image_lora.py (its training loop body)."""
    from diffusers.training_utils import compute_snr

    latents = vae.encode(batch["pixel_values"]).latent_dist.sample()
    latents = latents * vae.config.scaling_factor
    noise = torch.randn_like(latents)
    bsz = latents.shape[0]
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,), device=latents.device)
    timesteps = timesteps.long()
    noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
    encoder_hidden_states = text_encoder(batch["input_ids"], return_dict=False)[0]
    if noise_scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    model_pred = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
    if snr_gamma is None:
        return F.mse_loss(model_pred.float(), target.float(), reduction="mean")
    snr = compute_snr(noise_scheduler, timesteps)
    mse_loss_weights = torch.stack([snr, snr_gamma * torch.ones_like(timesteps)], dim=1).min(dim=1)[0]
    if noise_scheduler.config.prediction_type == "epsilon":
        mse_loss_weights = mse_loss_weights / snr
    elif noise_scheduler.config.prediction_type == "v_prediction":
        mse_loss_weights = mse_loss_weights / (snr + 1)
    loss = F.mse_loss(model_pred.float(), target.float(), reduction="none")
    loss = loss.mean(dim=list(range(1, len(loss.shape)))) * mse_loss_weights
    return loss.mean()


def compare_sd_lora(sd: Path, data: Path, args, work: Path) -> None:
    """Ours (Lightning SDLoRA, caches on and off) vs diffusers' reference LoRA loop: same model, batch and
    pre-loaded data, runs interleaved so drifting load on the machine hits all alike."""
    base = [f"data.root={data}", f"data.batch_size={args.batch}", "model=sd_lora", f"model.pretrained={sd}",
            f"data.image_size={args.image_size}", "model.sample_every_n_steps=0"]
    variants = {"caches on (default)": compose_train(base),
                "latent cache off": compose_train([*base, "model.latent_cache_size=0"]),
                "both caches off": compose_train([*base, "model.latent_cache_size=0", "model.text_cache_size=0"])}
    cfg = variants["caches on (default)"]
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    batches = preloaded_batches(datamodule, args.batch, args.warmup + args.steps)
    items = len(datamodule.datasets["train"])
    ours: dict[str, list[float]] = {name: [] for name in variants}
    memory: dict[str, float | None] = {}
    reference = []
    for _ in range(args.repeats):
        for name, variant in variants.items():
            speed, memory[name] = ours_sd_lora(variant, batches, args, work)
            ours[name].append(speed)
        speed, memory["reference"] = reference_sd_lora(cfg, batches, args)
        reference.append(speed)
    reference_s = statistics.median(reference)
    runs = lambda values: ", ".join(f"{v:.0f}" for v in values)  # noqa: E731
    gb = lambda value: "" if value is None else f" | {value:.1f}"  # noqa: E731
    model = "SD 1.5-shaped random" if args.full_size else "tiny random"
    print()
    print(f"| sd_lora vs diffusers reference loop ({model}, {args.image_size} px, {args.device}, {args.precision}, "
          f"r={cfg.model.rank}, snr_gamma={cfg.model.get('snr_gamma')}, batch {args.batch} cycling over {items} "
          f"training items, pre-loaded tensors, {args.warmup} warm-up + {args.steps} timed steps, median of "
          f"{args.repeats}, {args.threads} thread(s)) | ours samples/s | reference samples/s | ours / reference "
          f"| ours runs | reference runs{' | ours peak GB | reference peak GB' if memory['reference'] else ''} |")
    print("|---|---|---|---|---|---|" + ("---|---|" if memory["reference"] else ""))
    for name, values in ours.items():
        ours_s = statistics.median(values)
        print(f"| {name} | {ours_s:.0f} | {reference_s:.0f} | {ours_s / reference_s:.2f} | {runs(values)} "
              f"| {runs(reference)}{gb(memory[name])}{gb(memory['reference'])} |")


def write_full_size_sd(root: Path, device: torch.device) -> Path:
    """A random SD 1.5-shaped pipeline folder: bench_magicface's shapes, the test fixture's model_index.json."""
    import shutil

    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET)
    unet.save_pretrained(root / "unet")
    write_sd15_base(root, device)
    shutil.copy(FIXTURE / "sd15" / "model_index.json", root / "model_index.json")
    return root


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def tiny_dataset(folder: Path) -> Path:
    import edit

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="edit", overrides=[
            "faceset.only=[001.jpg,006.jpg,014.jpg,021.jpg,047.jpg,050.jpg,072.jpg,080.jpg]", "expression=catalog",
            "expression.only=[anger_masking_smile,felt_smile,suppressed_sadness]", "dataset=imagefolder",
            "measure=off", "workers=1", "progress=false", "logger=none"])
    edit.edit(cfg, folder)
    return folder / "dataset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the SD LoRA comparison's timing")
    parser.add_argument("--repeats", type=int, default=5, help="SD LoRA comparison repeats (median reported)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="the SD LoRA comparison's device (cuda: that comparison only)")
    parser.add_argument("--full-size", action="store_true",
                        help="SD LoRA comparison only, on SD 1.5-shaped random weights (default 512 px)")
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"], default="32-true")
    parser.add_argument("--image-size", type=int, help="SD LoRA comparison image size (default 16, full size 512)")
    args = parser.parse_args()
    args.image_size = args.image_size or (512 if args.full_size else 16)
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_train-"))
    data = args.data or tiny_dataset(work / "run")
    if args.full_size or args.device == "cuda":
        device = torch.device(args.device)
        sd = write_full_size_sd(work / "sd15", device) if args.full_size else build_tiny_sd(work / "tiny_sd")
        compare_sd_lora(sd, data, args, work)
        return
    clip, sd = build_tiny_clip(work / "tiny_clip"), build_tiny_sd(work / "tiny_sd")
    rows = {
        "expression_clip, MiniLM frozen": ["model=expression_clip"],
        "expression_clip, MiniLM LoRA r=8": ["model=expression_clip", "model.text_tuning=lora"],
        "clip (tiny random, 32 px), full": ["model=clip", f"model.pretrained={clip}", "data.image_size=32"],
        "clip (tiny random, 32 px), LoRA r=8": ["model=clip", f"model.pretrained={clip}", "data.image_size=32",
                                                "model.lora={r:8,alpha:16}"],
        "sd_lora (tiny random, 16 px), r=8": ["model=sd_lora", f"model.pretrained={sd}", "data.image_size=16",
                                              "model.sample_every_n_steps=0"],
    }
    print(f"| module ({args.steps} steps, batch {args.batch}, {args.threads} thread(s)) | samples/s | s/step |")
    print("|---|---|---|")
    for name, overrides in rows.items():
        cfg = compose_train([f"data.root={data}", f"data.batch_size={args.batch}", *overrides])
        datamodule = instantiate(cfg.data, _convert_="all")
        datamodule.prepare_data()
        module = instantiate(cfg.model, _convert_="all")
        timer = StepTimer()
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, limit_val_batches=0, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[timer], default_root_dir=str(work))
        trainer.fit(module, datamodule=datamodule)
        seconds = timer.end - timer.start
        steps = max(trainer.global_step - 1, 1)
        print(f"| {name} | {timer.samples / seconds:.0f} | {seconds / steps:.3f} |")
    compare_sd_lora(sd, data, args, work)


if __name__ == "__main__":
    main()

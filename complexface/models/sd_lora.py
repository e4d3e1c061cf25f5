"""``model=sd_lora``: LoRA fine-tuning of a Stable Diffusion 1.5 UNet on the expression dataset.

Loads the components (``vae``, ``text_encoder``, ``tokenizer``, ``unet``, ``scheduler``) from a
local pipeline folder, freezes them, adds peft LoRA adapters to the UNet attention projections
(``rank``, ``alpha``, ``targets``), and trains the noise-prediction loss (epsilon or v-prediction,
as the scheduler says; optional min-SNR-gamma weighting). The VAE and text encoder are frozen and in eval
mode, so training computes each caption's hidden states (``text_cache_size`` captions at most; a dataset's
captions come from a few per recipe) and each image's VAE posterior (``latent_cache_size`` images at most,
keyed by the batch's ``file``; off when the datamodule augments) once and reuses them; the latents are still
sampled from the posterior every step. Every ``sample_every_n_steps`` it renders
a fixed-seed grid of ``sample_prompts`` to the logger. ``save_pretrained`` writes the LoRA weights
that ``StableDiffusionPipeline.load_lora_weights`` loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info

from complexface.models.text import cached_encode
from complexface.settings import require
from complexface.weights import check_state, load_sd15_models, sd15_pipeline_folder

if TYPE_CHECKING:
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution


class SDLoRA(L.LightningModule):
    """Text-to-image LoRA on the UNet; images in the batch are ``pixel_values`` in [-1, 1]."""

    def __init__(self, pretrained: str, rank: int = 8, alpha: int = 8,
                 targets: Sequence[str] = ("to_q", "to_k", "to_v", "to_out.0"), lr: float = 1e-4,
                 snr_gamma: float | None = None, text_cache_size: int = 1024, latent_cache_size: int = 16384,
                 sample_prompts: Sequence[str] = (), sample_every_n_steps: int = 0,
                 sample_steps: int = 20, sample_seed: int = 0, sample_size: int | None = None) -> None:
        super().__init__()
        from diffusers import DDPMScheduler
        from peft import LoraConfig
        from transformers import CLIPTokenizer

        require(rank >= 1 and alpha > 0 and lr > 0, f"sd_lora: rank, alpha and lr must be positive, got {rank}, "
                f"{alpha} and {lr}")
        require(snr_gamma is None or snr_gamma > 0, f"sd_lora: snr_gamma must be positive or null, got {snr_gamma}")
        require(min(text_cache_size, latent_cache_size, sample_every_n_steps) >= 0 and sample_steps >= 1,
                "sd_lora: cache sizes and sample_every_n_steps must be >= 0 and sample_steps >= 1")
        self.save_hyperparameters()
        path = sd15_pipeline_folder(pretrained, "model.pretrained=<a local SD 1.5 folder>")
        self.tokenizer = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer")
        models = load_sd15_models(path)  # strict: a tensor missing from the folder is an error, not random init
        self.text_encoder = models["text_encoder"].requires_grad_(False)
        self.vae = models["vae"].requires_grad_(False)
        self.unet = models["unet"].requires_grad_(False)
        self.scheduler = DDPMScheduler.from_pretrained(str(path), subfolder="scheduler")
        self.unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                         target_modules=list(targets)))
        self.pretrained, self.lr, self.snr_gamma = path, lr, snr_gamma
        self.text_cache_size, self._text_cache = text_cache_size, {}  # caption -> hidden states
        self.latent_cache_size, self._latent_cache = latent_cache_size, {}  # file -> VAE posterior parameters
        self.sample_prompts, self.sample_every_n_steps = list(sample_prompts), sample_every_n_steps
        self.sample_steps, self.sample_seed, self.sample_size = sample_steps, sample_seed, sample_size
        self.strict_loading = False  # checkpoints hold the LoRA weights only: on_load_checkpoint checks exactly those

    def train(self, mode: bool = True) -> SDLoRA:
        """Only the UNet (its LoRA adapters) switches to train mode; the VAE and text encoder stay in eval."""
        super().train(mode)
        self.vae.eval()
        self.text_encoder.eval()
        return self

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), padding="max_length", truncation=True,
                                max_length=self.tokenizer.model_max_length, return_tensors="pt")
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Text-encoder hidden states per caption; captions seen before come from the cache."""
        return cached_encode(self._text_cache, texts, self._encode, self.text_cache_size).to(self.device)

    def on_fit_start(self) -> None:
        if self.latent_cache_size and getattr(getattr(self.trainer, "datamodule", None), "augment", False):
            rank_zero_info("sd_lora: VAE latent cache off, since data.augment=true changes the pixels every epoch")
            self.latent_cache_size = 0

    def _posterior(self, batch: dict[str, Any], cache: bool) -> DiagonalGaussianDistribution:
        """The VAE posterior of the batch's images (cached per ``file`` when ``cache``)."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        pixels = batch["pixel_values"].to(self.vae.dtype)
        if not (cache and self.latent_cache_size and "file" in batch):
            return self.vae.encode(pixels).latent_dist
        files = list(batch["file"])

        def encode(keys: Sequence[str]) -> torch.Tensor:
            return self.vae.encode(pixels[[files.index(k) for k in keys]]).latent_dist.parameters

        parameters = cached_encode(self._latent_cache, files, encode, self.latent_cache_size)
        return DiagonalGaussianDistribution(parameters.to(self.device))

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None,
             cache: bool = False) -> torch.Tensor:
        """Noise-prediction MSE at random timesteps (min-SNR-gamma weighted when ``snr_gamma`` is set);
        ``cache``: reuse the VAE posteriors of images seen before."""
        with torch.no_grad():
            latents = self._posterior(batch, cache).sample(generator) * self.vae.config.scaling_factor
            states = self._embed(batch["text"])
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        steps = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(latents),), generator=generator,
                              device=latents.device)
        noisy = self.scheduler.add_noise(latents, noise, steps)
        target = self.scheduler.get_velocity(latents, noise, steps) \
            if self.scheduler.config.prediction_type == "v_prediction" else noise
        prediction = self.unet(noisy, steps, states).sample
        if self.snr_gamma is None:
            return F.mse_loss(prediction.float(), target.float())
        from diffusers.training_utils import compute_snr

        snr = compute_snr(self.scheduler, steps)
        weights = torch.stack([snr, self.snr_gamma * torch.ones_like(snr)], 1).min(1)[0]
        weights = weights / (snr + 1) if self.scheduler.config.prediction_type == "v_prediction" else weights / snr
        per_item = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        return (per_item * weights).mean()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch, cache=True)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["text"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        generator = torch.Generator(self.device).manual_seed(self.sample_seed + batch_idx)
        stage = "test" if self.trainer.testing else "val"
        self.log(f"{stage}/loss", self.loss(batch, generator), batch_size=len(batch["text"]), sync_dist=True)

    test_step = validation_step

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trained (LoRA) weights: the frozen components reload from ``pretrained``."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A partial load on purpose, checked: the checkpoint must hold exactly this module's trainable (LoRA)
        tensors, with their shapes; a checkpoint of another rank, other targets or a full state dict is refused
        with CheckpointMismatchError (the frozen components come from ``pretrained``, strictly)."""
        trainable = {name: p for name, p in self.named_parameters() if p.requires_grad}
        check_state(f"the sd_lora checkpoint (LoRA rank {self.hparams.rank} on {list(self.hparams.targets)})",
                    trainable, checkpoint["state_dict"])

    def on_train_batch_end(self, outputs: Any, batch: dict[str, Any], batch_idx: int) -> None:
        step = self.global_step
        if self.sample_prompts and self.sample_every_n_steps and step % self.sample_every_n_steps == 0 \
                and self.trainer.is_global_zero and self.logger and hasattr(self.logger, "log_image"):
            self.logger.log_image("samples", [self.sample_grid()], step=step, caption=[" | ".join(self.sample_prompts)])

    def pipeline(self):
        """A ``StableDiffusionPipeline`` over this module's (LoRA-adapted) components."""
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        return StableDiffusionPipeline(vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
                                       unet=self.unet, scheduler=DDIMScheduler.from_config(self.scheduler.config),
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """One row of images, one per sample prompt, from a fixed seed (comparable across steps)."""
        was_training = self.unet.training
        self.unet.eval()
        size = self.sample_size or self.unet.config.sample_size * 2 ** (len(self.vae.config.block_out_channels) - 1)
        images = self.pipeline()(self.sample_prompts, num_inference_steps=self.sample_steps, height=size, width=size,
                                 generator=torch.Generator(self.device).manual_seed(self.sample_seed),
                                 output_type="np").images
        self.unet.train(was_training)
        return (np.concatenate(list(images), axis=1) * 255).round().astype(np.uint8)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([p for p in self.unet.parameters() if p.requires_grad], lr=self.lr)

    def save_pretrained(self, folder: str | Path) -> Path:
        """``pytorch_lora_weights.safetensors`` for ``StableDiffusionPipeline.load_lora_weights(folder)``."""
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(self.unet))
        StableDiffusionPipeline.save_lora_weights(str(folder), unet_lora_layers=layers, safe_serialization=True)
        return Path(folder)

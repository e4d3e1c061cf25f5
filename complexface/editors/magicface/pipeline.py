"""MagicFacePipeline: MagicFace's AU-conditioned sampling on stock diffusers/transformers parts.

Recipe, as published: the source crop and the ``bg`` condition are encoded to unscaled VAE
posterior modes; the ID encoder runs once at timestep 0 and its 16 transformer-block inputs
feed the denoiser's reference attention; the denoiser sees ``concat(noisy latents, bg latents)``
and ``au_aug_mlp(aus)`` added to its time embedding; guidance is on the AUs only,
``eps = eps(0) + s * (eps(au) - eps(0))``, with one fixed prompt (the original computes the same
mix in sigma space, equal up to float rounding); UniPC samples; the result is decoded from
``latents / scaling_factor``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from transformers import CLIPTextModel, CLIPTokenizer

from complexface.au import EDITABLE, AUEdit, AUError, parse_edit
from complexface.editors.magicface.attention import ReferenceAttention, capture_block_inputs
from complexface.editors.magicface.loading import (
    check_files,
    load_scheduler,
    load_text_encoder,
    load_tokenizer,
    load_unet,
    load_vae,
)
from complexface.faces.image_io import load_image, to_rgb

PROMPT = "A close up of a person."
ID_TIMESTEP = 0

ImageInput = str | os.PathLike | Image.Image | np.ndarray
"""A path, a PIL image (any mode) or an HxWx3 uint8 RGB array."""
AUInput = AUEdit | Mapping[str, float] | str | Sequence[float]
"""One edit: an AUEdit, ``{"AU6": 2}``, ``"AU6+AU12=3+3"`` or a 12-vector in MagicFace order."""


@dataclass
class MagicFaceOutput:
    images: list[Image.Image] | np.ndarray
    """PIL images, or (``output_type="np"``) a float32 [B, H, W, 3] array in [0, 1]."""


@dataclass(frozen=True)
class FaceCondition:
    """One face, encoded: what every edit of it shares."""

    source_latents: torch.Tensor
    """[1, 4, h, w] unscaled VAE mode of the crop."""
    bg_latents: torch.Tensor
    """[1, 4, h, w] unscaled VAE mode of the bg condition."""
    captures: list[torch.Tensor]
    """The ID encoder's 16 transformer-block inputs [1, HW, C], forward order."""


@dataclass(frozen=True)
class MagicFaceStep:
    """What a sampling step saw and produced (passed to ``callback``)."""

    index: int
    timestep: int
    noise_pred: torch.Tensor
    """[2B, 4, h, w]: eps(au) of every edit, then eps(0) of every edit."""
    guided: torch.Tensor
    """[B, 4, h, w]: the guided eps given to the scheduler."""
    latents: torch.Tensor
    """[B, 4, h, w]: latents after the step."""


def _is_vector(value: object) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _vector(edit: AUInput) -> list[float]:
    if _is_vector(edit):
        if len(edit) != len(EDITABLE):  # type: ignore[arg-type]
            raise ValueError(f"an AU vector needs {len(EDITABLE)} values ({' '.join(EDITABLE)}), got {len(edit)}")
        return [float(v) for v in edit]  # type: ignore[union-attr]
    parsed = parse_edit(edit)
    if parsed.sided:
        raise AUError(f"MagicFace has no per-side AUs; {parsed.label} gives a side (give both sides, e.g. AU12=3)")
    return parsed.vector()


def au_matrix(aus: AUInput | Sequence[AUInput] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """One edit or a list of edits -> float32 [B, 12] in MagicFace order."""
    if isinstance(aus, (np.ndarray, torch.Tensor)):
        matrix = torch.as_tensor(np.asarray(aus.cpu() if isinstance(aus, torch.Tensor) else aus), dtype=torch.float32)
        matrix = matrix.reshape(-1, matrix.shape[-1]) if matrix.ndim else matrix
        if matrix.ndim != 2 or matrix.shape[1] != len(EDITABLE):
            raise ValueError(f"AU array must have shape [12] or [B, 12], got {list(aus.shape)}")
        return matrix
    if isinstance(aus, (AUEdit, Mapping, str)) or _is_vector(aus):
        return torch.tensor([_vector(aus)], dtype=torch.float32)  # type: ignore[arg-type]
    rows = [_vector(edit) for edit in aus]
    if not rows:
        raise ValueError("no AU edits given")
    return torch.tensor(rows, dtype=torch.float32)


def _rgb(image: ImageInput) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {array.dtype} {list(array.shape)}")
    return array


class MagicFacePipeline:
    """MagicFace inference for one face and a batch of AU edits.

    ``own_queries=False`` switches the reference attention to the original formulation (queries
    for own + reference tokens, then a slice); the result is the same, only slower.
    """

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                 scheduler: UniPCMultistepScheduler, id_encoder: UNet2DConditionModel,
                 denoiser: UNet2DConditionModel, own_queries: bool = True) -> None:
        self.vae, self.text_encoder, self.tokenizer, self.scheduler = vae, text_encoder, tokenizer, scheduler
        self.id_encoder, self.denoiser = id_encoder, denoiser
        self.reference = ReferenceAttention(denoiser, own_queries)
        self._prompt_embeds: torch.Tensor | None = None

    @classmethod
    def from_pretrained(cls, magicface_dir: str | os.PathLike, base_model_dir: str | os.PathLike,
                        torch_dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                        own_queries: bool = True) -> MagicFacePipeline:
        """Load ``<magicface_dir>/{ID_enc,denoising_unet}`` strictly and the SD 1.5 VAE, text encoder,
        tokenizer and scheduler from ``base_model_dir``; local files only.

        Raises MagicFaceWeightsError for missing files or tensors that do not fit. The VAE stays in
        float32 when ``torch_dtype`` is float16 (SD's VAE overflows in fp16).
        """
        weights, base = check_files(magicface_dir, base_model_dir)
        device = torch.device(device)
        vae_dtype = torch.float32 if torch_dtype == torch.float16 else torch_dtype
        return cls(
            vae=load_vae(base / "vae", vae_dtype, device),
            text_encoder=load_text_encoder(base / "text_encoder", torch_dtype, device),
            tokenizer=load_tokenizer(base / "tokenizer"),
            scheduler=load_scheduler(base / "scheduler"),
            id_encoder=load_unet(weights / "ID_enc", 4, False, torch_dtype, device),
            denoiser=load_unet(weights / "denoising_unet", 8, True, torch_dtype, device),
            own_queries=own_queries,
        )

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """Pixel size the model works at (512 for MagicFace)."""
        return self.denoiser.config.sample_size * self.vae_scale_factor

    def encode_prompt(self) -> torch.Tensor:
        """CLIP embedding [1, 77, D] of the fixed prompt (computed once)."""
        if self._prompt_embeds is None:
            ids = self.tokenizer(PROMPT, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            with torch.inference_mode():
                self._prompt_embeds = self.text_encoder(ids.to(self.device)).last_hidden_state.to(self.dtype)
        return self._prompt_embeds

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """RGB -> [1, 3, R, R] in [-1, 1] (resized to the model resolution if needed)."""
        rgb = _rgb(image)
        size = self.resolution
        if rgb.shape[:2] != (size, size):
            rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS))
        pixels = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div(255) * 2 - 1
        return pixels[None].to(self.device, self.vae.dtype)

    @torch.inference_mode()
    def encode_image(self, image: ImageInput) -> torch.Tensor:
        """Unscaled VAE posterior mode [1, 4, h, w] (MagicFace's condition latents)."""
        return self.vae.encode(self.preprocess(image)).latent_dist.mode().to(self.dtype)

    @torch.inference_mode()
    def identity_captures(self, source_latents: torch.Tensor) -> list[torch.Tensor]:
        """The ID encoder's 16 transformer-block inputs [1, HW, C] for the source latents (t = 0)."""
        text = self.encode_prompt().expand(source_latents.shape[0], -1, -1)
        return capture_block_inputs(self.id_encoder, lambda: self.id_encoder(source_latents, ID_TIMESTEP, text))

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, 4, h, w] -> float32 images [B, 3, H, W] in [0, 1], one VAE decode at a time."""
        scale = self.vae.config.scaling_factor
        decoded = [self.vae.decode((z[None] / scale).to(self.vae.dtype)).sample.float() for z in latents]
        return (torch.cat(decoded) / 2 + 0.5).clamp(0, 1)

    @torch.inference_mode()
    def encode_face(self, image: ImageInput, bg: ImageInput) -> FaceCondition:
        """The per-face work shared by all its edits: both VAE encodes and the ID encoder."""
        source = self.encode_image(image)
        return FaceCondition(source, self.encode_image(bg), self.identity_captures(source))

    @torch.inference_mode()
    def generate(self, face: FaceCondition, aus: AUInput | Sequence[AUInput] | np.ndarray | torch.Tensor,
                 num_inference_steps: int = 50, au_guidance_scale: float = 1.5,
                 generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                 output_type: str = "pil", callback: Callable[[MagicFaceStep], None] | None = None) -> MagicFaceOutput:
        """Sample a batch of AU edits of one encoded face (see ``__call__``)."""
        if output_type not in ("pil", "np"):
            raise ValueError(f"output_type must be 'pil' or 'np', got {output_type!r}")
        au = au_matrix(aus).to(self.device)
        self.reference.set_references(face.captures)
        try:
            latents = self._sample(au, face.bg_latents, num_inference_steps, au_guidance_scale, generator, latents,
                                   callback)
        finally:
            self.reference.set_references(None)
        images = self.decode(latents).permute(0, 2, 3, 1).cpu().numpy()
        if output_type == "np":
            return MagicFaceOutput(images)
        return MagicFaceOutput([Image.fromarray(im) for im in (images * 255).round().astype(np.uint8)])

    def __call__(self, image: ImageInput, bg: ImageInput, aus: AUInput | Sequence[AUInput] | np.ndarray | torch.Tensor,
                 num_inference_steps: int = 50, au_guidance_scale: float = 1.5,
                 generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                 output_type: str = "pil", callback: Callable[[MagicFaceStep], None] | None = None) -> MagicFaceOutput:
        """Edit one face with one edit or a list of edits (one batch; the ID encoder runs once).

        Every edit starts from the same initial noise: ``latents`` ([1 or B, 4, h, w], diffusers'
        convention) or one draw from ``generator``, so a batch gives what the edits give one at a
        time. ``callback`` receives a MagicFaceStep after every scheduler step.
        """
        return self.generate(self.encode_face(image, bg), aus, num_inference_steps, au_guidance_scale, generator,
                             latents, output_type, callback)

    def _sample(self, au: torch.Tensor, condition: torch.Tensor, steps: int, scale: float,
                generator: torch.Generator | None, latents: torch.Tensor | None,
                callback: Callable[[MagicFaceStep], None] | None) -> torch.Tensor:
        batch = au.shape[0]
        shape = (1, self.denoiser.config.out_channels, *condition.shape[-2:])
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)
        if latents.shape[0] not in (1, batch) or tuple(latents.shape[1:]) != shape[1:]:
            raise ValueError(f"latents must have shape [1 or {batch}, {', '.join(map(str, shape[1:]))}], "
                             f"got {list(latents.shape)}")
        self.scheduler.set_timesteps(steps, device=self.device)
        latents = (latents.to(self.device, torch.float32) * self.scheduler.init_noise_sigma).expand(batch, -1, -1, -1)
        au_pair = torch.cat([au, torch.zeros_like(au)]).to(self.dtype)
        condition = condition.expand(2 * batch, -1, -1, -1)
        text = self.encode_prompt().expand(2 * batch, -1, -1)
        for index, t in enumerate(self.scheduler.timesteps):
            noisy = self.scheduler.scale_model_input(torch.cat([latents, latents]), t)
            sample = torch.cat([noisy.to(self.dtype), condition], dim=1)
            noise_pred = self.denoiser(sample, t, text, class_labels=au_pair).sample.float()
            eps_au, eps_zero = noise_pred.chunk(2)
            guided = eps_zero + scale * (eps_au - eps_zero)
            latents = self.scheduler.step(guided, t, latents).prev_sample
            if callback is not None:
                callback(MagicFaceStep(index, int(t), noise_pred, guided, latents))
        return latents

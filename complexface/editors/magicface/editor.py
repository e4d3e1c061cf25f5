"""The MagicFace editor: the diffusion model behind the Editor interface.

Weights load once, lazily, in the process that edits (the editor pickles before and after).
Every edit of a face starts from the same seeded noise, so batching does not change results,
and the zero edit also goes through the model: MagicFace regenerates the face, and a sweep's
neutral column shows that regeneration rather than the untouched input.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from complexface.au import AUEdit
from complexface.devices import resolve_device, resolve_dtype
from complexface.editors.base import Editor
from complexface.editors.magicface.loading import check_checkpoint
from complexface.editors.magicface.pipeline import FaceCondition, MagicFacePipeline
from complexface.faces.align import AlignedFace
from complexface.faces.condition import BackgroundCondition
from complexface.faces.image_io import content_key
from complexface.settings import require


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 image to ``size`` (area filter to shrink, cubic to enlarge)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrink = image.shape[0] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class MagicFaceEditor(Editor):
    """MagicFace edits of aligned crops, batched per face (ID encoder once per batch).

    ``weights``: folder with ``ID_enc/`` and ``denoising_unet/``; ``base_model``: SD 1.5 folder.
    Missing files or UNet tensors that do not fit raise MagicFaceWeightsError here, at
    construction (only file headers are read), before any work starts; so does an unknown ``dtype``
    or an unavailable ``device`` (SettingError). The identity-encoder pass of the last face is kept,
    so editing the same face again (a closed loop's next iteration) skips it.
    """

    name = "magicface"
    needs_bg = True
    sides = False  # MagicFace's AU condition is one 12-vector: no per-side AUs

    def __init__(self, weights: str | os.PathLike | None = None, base_model: str | os.PathLike | None = None,
                 steps: int = 50, guidance: float = 1.5, dtype: str = "auto", device: str = "auto",
                 batch_size: int = 8, seed: int = 424, own_queries: bool = True, lock: Sequence[str] = ()) -> None:
        self.weights, self.base_model = check_checkpoint(weights, base_model)
        require(steps >= 1 and batch_size >= 1,
                f"magicface editor: steps and batch_size must be positive, got {steps} and {batch_size}")
        resolve_dtype(dtype, resolve_device(device))  # a bad dtype or device stops the job before any work
        super().__init__(lock)
        self.steps, self.guidance, self.batch_size, self.seed = steps, guidance, batch_size, seed
        self.dtype, self.device, self.own_queries = dtype, device, own_queries
        self._pipe: MagicFacePipeline | None = None
        self._bg: BackgroundCondition | None = None
        self._encoded: tuple[bytes, FaceCondition] | None = None

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_pipe": None, "_bg": None, "_encoded": None}

    @property
    def pipe(self) -> MagicFacePipeline:
        """The loaded pipeline (loaded on first use)."""
        if self._pipe is None:
            device = resolve_device(self.device)
            self._pipe = MagicFacePipeline.from_pretrained(self.weights, self.base_model,
                                                           torch_dtype=resolve_dtype(self.dtype, device),
                                                           device=device, own_queries=self.own_queries)
        return self._pipe

    def noise(self) -> torch.Tensor:
        """The initial noise every edit starts from (a CPU draw, so it is the same on any device)."""
        pipe = self.pipe
        size = pipe.resolution // pipe.vae_scale_factor
        generator = torch.Generator("cpu").manual_seed(self.seed)
        return torch.randn((1, pipe.denoiser.config.out_channels, size, size), generator=generator)

    def encoded(self, face: AlignedFace, bg: np.ndarray) -> FaceCondition:
        """The face's identity-encoder pass and condition latents (kept for the last face and bg)."""
        key = content_key(face.image, bg)
        if self._encoded is None or self._encoded[0] != key:
            size = self.pipe.resolution
            self._encoded = (key, self.pipe.encode_face(resize(face.image, size), resize(bg, size)))
        return self._encoded[1]

    def render(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[np.ndarray]:
        """One uint8 crop of ``face.image``'s size per edit; ``bg`` defaults to BackgroundCondition's."""
        if not edits:
            return []
        if bg is None:
            self._bg = self._bg or BackgroundCondition()
            bg = self._bg(face)
        encoded = self.encoded(face, bg)
        noise = self.noise()
        outputs: list[np.ndarray] = []
        for start in range(0, len(edits), self.batch_size):
            batch = edits[start:start + self.batch_size]
            result = self.pipe.generate(encoded, [e.vector() for e in batch], num_inference_steps=self.steps,
                                        au_guidance_scale=self.guidance, latents=noise, output_type="np")
            for crop in (result.images * 255).round().astype(np.uint8):
                outputs.append(resize(crop, face.size))
        return outputs

"""Finding and strictly loading MagicFace and Stable Diffusion 1.5 weights from local folders.

Nothing is fetched from the hub. Missing files and tensors that do not match the architecture
raise MagicFaceWeightsError with a message that says what is wrong and where the files come from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTokenizer

from complexface.editors.magicface import MagicFaceWeightsError
from complexface.weights import SD15_FILES, SD15_MAGICFACE_PATTERNS, SD15_REPO, file_listing, has_file, includes

MAGICFACE_REPO = "mengtingwei/magicface"
UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
AU_DIM = 12
AU_KEY, CLASS_KEY = "au_aug_mlp.", "class_embedding."
"""The checkpoint's AU projection is loaded as the stock UNet's ``class_embedding`` (a Linear)."""

MAGICFACE_FILES = ("ID_enc/config.json", f"ID_enc/{UNET_WEIGHTS}",
                   "denoising_unet/config.json", f"denoising_unet/{UNET_WEIGHTS}")
"""Files needed under the MagicFace root (the SD 1.5 root needs ``SD15_FILES``)."""


def check_files(weights: str | os.PathLike | None, base_model: str | os.PathLike | None) -> tuple[Path, Path]:
    """The two roots as Paths; raises MagicFaceWeightsError listing every expected file if any is missing."""
    roots = [Path(p).expanduser() if p else None for p in (weights, base_model)]
    complete = [root is not None and all(has_file(root, f) for f in files)
                for root, files in zip(roots, (MAGICFACE_FILES, SD15_FILES), strict=True)]
    if all(complete):
        return roots[0], roots[1]  # type: ignore[return-value]
    lines = ["MagicFace weights not found; expected these files:"]
    lines += file_listing("MagicFace", roots[0], MAGICFACE_FILES, "weights (editor.weights / $MAGICFACE_WEIGHTS)",
                          MAGICFACE_REPO, includes("ID_enc/*", "denoising_unet/*"))
    lines += file_listing("Stable Diffusion 1.5", roots[1], SD15_FILES, "base_model (editor.base_model / $SD15_DIR)",
                          SD15_REPO, includes(*SD15_MAGICFACE_PATTERNS))
    raise MagicFaceWeightsError("\n".join(lines))


def _unet_on_meta(folder: Path, in_channels: int, with_au: bool) -> UNet2DConditionModel:
    """A stock UNet built from ``folder/config.json`` without allocating weights.

    ``in_channels`` is fixed by the role (4 for the ID encoder, 8 for the denoiser), and the
    denoiser gets ``class_embedding = Linear(12, time_embed_dim)`` for ``au_aug_mlp``; the rest
    of the config (including ``_class_name``, which is ignored) comes from the file.
    """
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise MagicFaceWeightsError(f"cannot read {folder / 'config.json'}: {err}") from None
    extra = dict(class_embed_type="simple_projection", projection_class_embeddings_input_dim=AU_DIM) if with_au else {}
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(config, in_channels=in_channels, **extra)


def _file_key(key: str) -> str:
    return AU_KEY + key[len(CLASS_KEY):] if key.startswith(CLASS_KEY) else key


def _summary(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_unet(folder: Path, in_channels: int, with_au: bool) -> UNet2DConditionModel:
    """Compare the safetensors header (names, shapes) with the UNet the config describes.

    Returns that UNet on the meta device; raises MagicFaceWeightsError naming every missing,
    unexpected or mis-shaped tensor.
    """
    model = _unet_on_meta(folder, in_channels, with_au)
    expected = {_file_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    path = folder / UNET_WEIGHTS
    try:
        with safe_open(str(path), framework="pt") as handle:
            found = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as err:
        raise MagicFaceWeightsError(f"cannot read {path}: {err}") from None
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k} {list(found[k])} (expected {list(expected[k])})"
             for k in sorted(set(found) & set(expected)) if found[k] != expected[k]]
    problems = [f"{label}: {_summary(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise MagicFaceWeightsError(f"{path} does not match the UNet of {folder / 'config.json'} "
                                    f"(conv_in with {in_channels} channels{', au_aug_mlp' if with_au else ''}): "
                                    + "; ".join(problems))
    return model


def check_checkpoint(weights: str | os.PathLike | None,
                     base_model: str | os.PathLike | None) -> tuple[Path, Path]:
    """check_files, then both UNet files' tensor names and shapes (headers only, nothing is loaded)."""
    weights_dir, base_dir = check_files(weights, base_model)
    check_unet(weights_dir / "ID_enc", 4, False)
    check_unet(weights_dir / "denoising_unet", 8, True)
    return weights_dir, base_dir


def load_unet(folder: Path, in_channels: int, with_au: bool, dtype: torch.dtype,
              device: torch.device) -> UNet2DConditionModel:
    """Strictly load a MagicFace UNet folder into a stock UNet2DConditionModel (eval mode)."""
    model = check_unet(folder, in_channels, with_au)
    tensors = load_file(str(folder / UNET_WEIGHTS), device=str(device))
    state = {(CLASS_KEY + k[len(AU_KEY):] if k.startswith(AU_KEY) else k): v.to(dtype) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def _load_frozen(what: str, folder: Path, device: torch.device, load: Callable[[], tuple]) -> torch.nn.Module:
    """Run ``load`` (a ``from_pretrained(..., output_loading_info=True)``), insist that every tensor fit,
    and return the model on ``device``, frozen, in eval mode."""
    try:
        model, info = load()
    except (OSError, ValueError, RuntimeError) as err:
        raise MagicFaceWeightsError(f"cannot load the {what} from {folder}: {err}") from err
    bad = [*info.get("missing_keys", []), *(str(m[0]) if isinstance(m, tuple) else str(m)
                                              for m in info.get("mismatched_keys", []))]
    if bad:
        raise MagicFaceWeightsError(f"{folder} is incomplete or does not match its config.json: "
                                    f"{_summary(sorted(bad))}")
    return model.to(device).eval().requires_grad_(False)


def load_vae(folder: Path, dtype: torch.dtype, device: torch.device) -> AutoencoderKL:
    return _load_frozen("VAE", folder, device, lambda: AutoencoderKL.from_pretrained(
        folder, local_files_only=True, torch_dtype=dtype, output_loading_info=True))


def load_text_encoder(folder: Path, dtype: torch.dtype, device: torch.device) -> CLIPTextModel:
    return _load_frozen("text encoder", folder, device, lambda: CLIPTextModel.from_pretrained(
        folder, local_files_only=True, dtype=dtype, output_loading_info=True))


def load_tokenizer(folder: Path) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def load_scheduler(folder: Path) -> UniPCMultistepScheduler:
    """UniPC from SD 1.5's (PNDM) scheduler config, ending at sigma_min like the diffusers MagicFace used.

    The file has no ``timestep_spacing``/``prediction_type``, so UniPC's defaults (linspace,
    epsilon) apply, as in the original.
    """
    config = UniPCMultistepScheduler.load_config(folder)
    return UniPCMultistepScheduler.from_config(config, final_sigmas_type="sigma_min")

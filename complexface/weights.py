"""Local weight folders: which files each needs, and one message listing them when some are missing.

Nothing here downloads: the message says which files are expected where and the ``hf download`` command
that fetches them on a machine that can reach the hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from complexface.errors import UserError

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_FILES = ("scheduler/scheduler_config.json", "tokenizer/vocab.json|tokenizer.json",
              "tokenizer/merges.txt|tokenizer.json", "text_encoder/config.json",
              "text_encoder/model.safetensors|pytorch_model.bin", "vae/config.json",
              "vae/diffusion_pytorch_model.safetensors|diffusion_pytorch_model.bin")
"""Files of an SD 1.5 folder that MagicFace uses (it brings its own UNet); ``a|b`` means either file."""
SD15_PIPELINE_FILES = ("model_index.json", *SD15_FILES, "unet/config.json",
                       "unet/diffusion_pytorch_model.safetensors|diffusion_pytorch_model.bin")
"""Files of a full SD 1.5 pipeline folder (text-to-image, LoRA training)."""
SD15_DOWNLOAD = ('--include "model_index.json" "scheduler/*" "tokenizer/*" "text_encoder/config.json" '
                 '"text_encoder/model.safetensors" "vae/config.json" "vae/diffusion_pytorch_model.safetensors" '
                 '"unet/config.json" "unet/diffusion_pytorch_model.safetensors"')
CLIP_REPO = "openai/clip-vit-base-patch32"
CLIP_FILES = ("config.json", "model.safetensors|pytorch_model.bin", "tokenizer.json|vocab.json")
LORA_FILE = "pytorch_lora_weights.safetensors"


class ModelFolderError(UserError, FileNotFoundError):
    """A local model folder (text tower, CLIP, Stable Diffusion, LoRA) is missing or incomplete; the message
    says what to pass."""


def has_file(root: Path, spec: str) -> bool:
    """Whether ``root`` holds the file ``spec`` names (``dir/a|b``: either ``dir/a`` or ``dir/b``)."""
    folder, names = os.path.split(spec)
    return any((root / folder / name).is_file() for name in names.split("|"))


def file_listing(title: str, root: Path | None, files: tuple[str, ...], setting: str, repo: str,
                 download: str) -> list[str]:
    """Lines naming every expected file under ``root`` as ok or MISSING, and how to get them."""
    where = f"{root}" if root is not None else f"<not set: pass {setting}>"
    lines = [f"{title} ({where}; from the hub repository {repo}):"]
    for spec in files:
        state = "ok" if root is not None and has_file(root, spec) else "MISSING"
        lines.append(f"  {state:7} {spec.replace('|', ' (or ') + (')' if '|' in spec else '')}")
    lines.append(f"  get them with: hf download {repo} {download} --local-dir <dir>")
    return lines


def model_folder(path: str | os.PathLike | None, files: tuple[str, ...], title: str, setting: str, repo: str,
                 download: str) -> Path:
    """``path`` as a Path if it holds every file of ``files``; else ModelFolderError listing each of them."""
    root = Path(path).expanduser() if path else None
    if root is not None and all(has_file(root, spec) for spec in files):
        return root
    lines = [f"{title} weights not found; expected these files:",
             *file_listing(title, root, files, setting, repo, download)]
    raise ModelFolderError("\n".join(lines))


def sd15_pipeline_folder(path: str | os.PathLike | None, setting: str) -> Path:
    """A full SD 1.5 pipeline folder (``SD15_PIPELINE_FILES``); ``setting`` names the option that sets it."""
    return model_folder(path, SD15_PIPELINE_FILES, "Stable Diffusion 1.5", setting, SD15_REPO, SD15_DOWNLOAD)


def clip_folder(path: str | os.PathLike | None, setting: str) -> Path:
    """A transformers CLIP folder (``CLIP_FILES``); ``setting`` names the option that sets it."""
    return model_folder(path, CLIP_FILES, "CLIP", setting, CLIP_REPO,
                        '--include "*.json" "*.txt" "model.safetensors"')


def lora_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it holds ``pytorch_lora_weights.safetensors``; else ModelFolderError."""
    root = Path(path).expanduser()
    if not (root / LORA_FILE).is_file():
        raise ModelFolderError(f"no LoRA weights in {root}: expected {root / LORA_FILE}, which "
                               "`python train.py model=sd_lora ...` writes to <run dir>/model")
    return root

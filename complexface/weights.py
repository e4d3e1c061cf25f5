"""Local weight folders: which files each needs, and one message listing them when some are missing.

Nothing here downloads: the message says which files are expected where and the ``hf download`` command
that fetches them on a machine that can reach the hub.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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


def includes(*patterns: str) -> str:
    """``hf download`` options keeping only ``patterns`` (the CLI takes one pattern per ``--include``)."""
    return " ".join(f'--include "{p}"' for p in patterns)


SD15_MAGICFACE_PATTERNS = ("scheduler/*", "tokenizer/*", "text_encoder/config.json", "text_encoder/model.safetensors",
                           "vae/config.json", "vae/diffusion_pytorch_model.safetensors")
"""What MagicFace needs of the SD 1.5 repo."""
SD15_DOWNLOAD = includes("model_index.json", *SD15_MAGICFACE_PATTERNS, "unet/config.json",
                         "unet/diffusion_pytorch_model.safetensors")
CLIP_REPO = "openai/clip-vit-base-patch32"
CLIP_FILES = ("config.json", "model.safetensors|pytorch_model.bin", "tokenizer.json|vocab.json")
LORA_FILE = "pytorch_lora_weights.safetensors"


class ModelFolderError(UserError, FileNotFoundError):
    """A local model folder (text tower, CLIP, Stable Diffusion, LoRA) is missing or incomplete; the message
    says what to pass."""


class CheckpointMismatchError(UserError, ValueError):
    """Saved weights do not fit the model they are loaded into: the message names the missing, unexpected and
    mis-shaped tensors (the first few of each and how many)."""


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
                        includes("*.json", "*.txt", "model.safetensors"))


def lora_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it holds ``pytorch_lora_weights.safetensors``; else ModelFolderError."""
    root = Path(path).expanduser()
    if not (root / LORA_FILE).is_file():
        raise ModelFolderError(f"no LoRA weights in {root}: expected {root / LORA_FILE}, which "
                               "`python train.py model=sd_lora ...` writes to <run dir>/model")
    return root


def key_summary(keys: Sequence[str], limit: int = 5) -> str:
    """``"2 (a, b)"`` or ``"12 (a, b, c, d, e and 7 more)"``."""
    shown = ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
    return f"{len(keys)} ({shown})"


def mismatch_message(what: str, missing: Iterable[str] = (), unexpected: Iterable[str] = (),
                     wrong_shape: Iterable[str] = ()) -> str | None:
    """One sentence naming what differs, or None when nothing does."""
    parts = [f"{label} {key_summary(sorted(keys))}" for label, keys in
             (("missing", list(missing)), ("unexpected", list(unexpected)), ("wrong shape", list(wrong_shape)))
             if keys]
    return f"{what} does not match the model it is loaded into: " + "; ".join(parts) if parts else None


def check_state(what: str, expected: Mapping[str, Any], found: Mapping[str, Any],
                elsewhere: Sequence[str] = ()) -> None:
    """Raise CheckpointMismatchError unless ``found`` (a state dict) has exactly ``expected``'s keys and shapes.

    ``elsewhere``: key prefixes of a deliberate partial load, the tensors that come from somewhere else (e.g. a
    text tower loaded from its own folder under heads saved without it): they must be absent from ``found``,
    and every other key of ``expected`` must be there.
    """
    def shape(v: Any) -> tuple:
        return tuple(getattr(v, "shape", ()))

    prefixes = tuple(elsewhere)
    expected = {k: v for k, v in expected.items() if not (prefixes and k.startswith(prefixes))}
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {list(shape(found[k]))} (expected {list(shape(expected[k]))})"
             for k in found if k in expected and shape(found[k]) != shape(expected[k])]
    message = mismatch_message(what, missing, unexpected, wrong)
    if message:
        raise CheckpointMismatchError(message)


def load_state_strictly(module: Any, state: Mapping[str, Any], what: str, elsewhere: Sequence[str] = ()) -> None:
    """``module.load_state_dict(state)`` after ``check_state``: ``state`` holds exactly the module's tensors outside
    the ``elsewhere`` prefixes (those are left as they are)."""
    check_state(what, module.state_dict(), state, elsewhere)
    module.load_state_dict(state, strict=not elsewhere)


def from_pretrained_strictly(load: Callable[..., Any], folder: str | os.PathLike, what: str, **kwargs: Any) -> Any:
    """``load(folder, output_loading_info=True, **kwargs)`` (a transformers or diffusers ``from_pretrained``) that
    refuses missing, unexpected or mis-shaped tensors instead of initialising them at random."""
    try:
        model, info = load(str(folder), output_loading_info=True, **kwargs)
    except (RuntimeError, ValueError) as err:
        if not any(word in str(err).lower() for word in ("mismatch", "shape")):
            raise
        raise CheckpointMismatchError(f"{what} in {folder} does not match its config: {err}") from err
    message = mismatch_message(f"{what} in {folder}", info.get("missing_keys", ()), info.get("unexpected_keys", ()),
                               [str(m[0]) if isinstance(m, tuple) else str(m) for m in info.get("mismatched_keys", ())])
    if message:
        raise CheckpointMismatchError(message)
    return model


def load_sd15_models(folder: str | os.PathLike, dtype: Any = None) -> dict[str, Any]:
    """The ``text_encoder``, ``vae`` and ``unet`` of an SD 1.5 pipeline folder, each loaded strictly
    (``from_pretrained_strictly``; ``dtype``: a torch dtype, None = as saved)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    extra = {} if dtype is None else {"torch_dtype": dtype}
    return {"text_encoder": from_pretrained_strictly(CLIPTextModel.from_pretrained, Path(folder) / "text_encoder",
                                                     "text encoder", **({} if dtype is None else {"dtype": dtype})),
            "vae": from_pretrained_strictly(AutoencoderKL.from_pretrained, Path(folder) / "vae", "VAE", **extra),
            "unet": from_pretrained_strictly(UNet2DConditionModel.from_pretrained, Path(folder) / "unet", "UNet",
                                             **extra)}

"""Free text -> a complex expression on a face: retrieve a catalog recipe, apply it with an editor."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

from complexface.atomic import write_text
from complexface.devices import resolve_device, resolve_dtype
from complexface.editors.base import Editor
from complexface.expressions import select_recipes
from complexface.faces import BackgroundCondition, FacePipeline, demo_faceset, paste_back, save_image
from complexface.retrieval import Choice, PromptError, RecipeRetriever
from complexface.settings import require
from complexface.weights import (
    LORA_FILE,
    CheckpointMismatchError,
    check_state,
    load_sd15_models,
    lora_folder,
    sd15_pipeline_folder,
)


class RecipeGenerator:
    """``generator=recipe``: the retrieved recipe's AUs (times ``scale``) applied by ``editor`` (offline)."""

    def __init__(self, retriever: RecipeRetriever, editor: Editor, pipeline: FacePipeline, scale: float = 1.0) -> None:
        self.retriever, self.editor, self.pipeline, self.scale = retriever, editor, pipeline, scale

    def __call__(self, prompt: str, face: str | Path | None, out_dir: str | Path) -> tuple[Choice, dict]:
        """Write ``choice.json``, ``source.png``, ``edit.png`` and ``photo.jpg`` to ``out_dir``."""
        out_dir = Path(out_dir)
        choice = self.retriever(prompt)
        path = Path(face) if face else demo_faceset()[0].path
        found = self.pipeline(path)[0]
        edit = choice.recipe.aus.scaled(self.scale)
        bg = BackgroundCondition()(found.aligned) if self.editor.needs_bg else None
        crop = self.editor.edit(found.aligned, [edit], bg=bg)[0]
        outputs = {"source": save_image(found.aligned.image, out_dir / "source.png"),
                   "edit": save_image(crop, out_dir / "edit.png"),
                   "photo": save_image(paste_back(found.photo, found.aligned, crop), out_dir / "photo.jpg")}
        record = {"prompt": prompt, **choice.to_json(), "applied": edit.values, "scale": self.scale,
                  "face": str(path), "editor": getattr(self.editor, "name", type(self.editor).__name__),
                  "outputs": {k: str(v) for k, v in outputs.items()}}
        write_text(out_dir / "choice.json", json.dumps(record, ensure_ascii=False, indent=1))
        return choice, record


def load_lora_strictly(pipeline, folder: Path, adapter: str = "lora") -> None:
    """``pipeline.load_lora_weights(folder)``, then check that every tensor of the file (a ``train.py
    model=sd_lora`` export: UNet LoRA only) became an adapter weight of the UNet, with its shape, and that the
    UNet got no other adapter weights; CheckpointMismatchError otherwise (diffusers only warns)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    path = folder / LORA_FILE
    saved = load_file(str(path))
    try:
        pipeline.load_lora_weights(str(folder), adapter_name=adapter)
    except (ValueError, RuntimeError, KeyError) as err:
        raise CheckpointMismatchError(f"{path} does not fit the UNet of the SD 1.5 folder: {err}") from err
    loaded = get_peft_model_state_dict(pipeline.unet, adapter_name=adapter) \
        if adapter in getattr(pipeline.unet, "peft_config", {}) else {}
    check_state(str(path), {f"unet.{k}": v for k, v in convert_state_dict_to_diffusers(loaded).items()}, saved)


class SDLoRAGenerator:
    """``generator=sd_lora``: text-to-image with a local SD 1.5 pipeline and the LoRA of ``train.py model=sd_lora``.

    Draws each prompt (the call's ``prompt``, then the first ``language`` caption of each recipe in ``recipes``)
    once per seed in ``seeds``, ``batch_size`` images per pipeline call. Every image has its own CPU generator,
    so it does not depend on the batching and starts from the same noise on any device. It draws new faces, so
    a ``face`` is refused (SettingError) rather than ignored.
    """

    def __init__(self, pretrained: str | Path, lora: str | Path | None = None, recipes: Sequence[str] = (),
                 language: str = "en", seeds: Sequence[int] = (0,), batch_size: int = 4, steps: int = 30,
                 guidance: float = 7.5, size: int | None = None, lora_scale: float = 1.0,
                 device: str | None = "auto", dtype: str | None = "auto") -> None:
        from diffusers import StableDiffusionPipeline

        require(len(seeds) > 0 and batch_size >= 1 and steps >= 1,
                f"sd_lora generator: seeds must be non-empty and batch_size, steps positive, got {list(seeds)}, "
                f"{batch_size} and {steps}")
        pretrained = sd15_pipeline_folder(pretrained, "generator.pretrained=<a local SD 1.5 folder>")
        lora = lora_folder(lora) if lora else None
        self.recipes = select_recipes(recipes) if recipes else {}
        self.captions = {rid: r.captions(language)[0] for rid, r in self.recipes.items()}
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)  # the MagicFace editor's policy: bf16 on CUDA, fp32 on CPU
        self.pipeline = StableDiffusionPipeline.from_pretrained(str(pretrained), safety_checker=None,
                                                                requires_safety_checker=False, torch_dtype=self.dtype,
                                                                **load_sd15_models(pretrained, self.dtype))
        if lora:
            load_lora_strictly(self.pipeline, lora)
        self.pipeline.to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)
        self.pretrained, self.lora, self.seeds, self.batch_size = pretrained, lora, list(seeds), batch_size
        self.steps, self.guidance, self.size, self.lora_scale = steps, guidance, size, lora_scale

    def __call__(self, prompt: str | None, face: str | Path | None, out_dir: str | Path) -> tuple[None, dict]:
        """Write ``images/<row>_seed<seed>.png``, ``grid.png`` (prompts x seeds) and ``choice.json``."""
        import torch
        from tqdm import tqdm

        from complexface.report.grids import Thumbnails, draw_grid

        require(not face, f"generator=sd_lora draws new faces from text and cannot use face={face}: drop face=, "
                "or use generator=recipe to put the prompt's expression on that photo")
        rows = ([(prompt, None)] if prompt and prompt.strip() else []) + \
            [(caption, rid) for rid, caption in self.captions.items()]
        if not rows:
            raise PromptError('nothing to draw: give prompt="..." or generator.recipes=[<recipe id>, ...]')
        out_dir = Path(out_dir)
        jobs = [(row, seed) for row in range(len(rows)) for seed in self.seeds]
        files: dict[tuple[int, int], Path] = {}
        for start in tqdm(range(0, len(jobs), self.batch_size), desc="sd_lora", unit="batch",
                          disable=len(jobs) <= self.batch_size):
            chunk = jobs[start:start + self.batch_size]
            images = self.pipeline([rows[row][0] for row, _ in chunk], num_inference_steps=self.steps,
                                   guidance_scale=self.guidance, height=self.size, width=self.size,
                                   generator=[torch.Generator().manual_seed(seed) for _, seed in chunk],
                                   output_type="np", cross_attention_kwargs={"scale": self.lora_scale}).images
            for (row, seed), image in zip(chunk, images, strict=True):
                files[row, seed] = save_image((image * 255).round().astype("uint8"),
                                              out_dir / "images" / f"{row:02d}_seed{seed}.png")
        labels = [rid or textwrap.shorten(text, 60) for text, rid in rows]
        grid = draw_grid([[files[row, seed] for seed in self.seeds] for row in range(len(rows))],
                         [textwrap.fill(label, 16) if " " in label else label for label in labels],
                         [f"seed {seed}" for seed in self.seeds], f"sd_lora: {self.lora or 'base model'}",
                         Thumbnails(256))
        record = {"generator": "sd_lora", "pretrained": str(self.pretrained),
                  "lora": str(self.lora) if self.lora else None, "steps": self.steps, "guidance": self.guidance,
                  "lora_scale": self.lora_scale, "seeds": self.seeds, "device": str(self.device),
                  "dtype": str(self.dtype).removeprefix("torch."),
                  "images": [{"prompt": rows[row][0], "recipe_id": rows[row][1], "seed": seed,
                              "file": str(files[row, seed])} for row, seed in jobs],
                  "outputs": {"grid": str(save_image(grid, out_dir / "grid.png"))}}
        write_text(out_dir / "choice.json", json.dumps(record, ensure_ascii=False, indent=1))
        return None, record

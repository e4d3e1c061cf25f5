"""Free text -> a complex expression on a face: retrieve a catalog recipe, apply it with an editor."""

from __future__ import annotations

import json
from pathlib import Path

from complexface.atomic import write_text
from complexface.editors.base import Editor
from complexface.faces import BackgroundCondition, FacePipeline, demo_faceset, paste_back, save_image
from complexface.retrieval import Choice, RecipeRetriever
from complexface.weights import lora_folder, sd15_pipeline_folder


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


class SDLoRAGenerator:
    """``generator=sd_lora``: text-to-image with a local SD 1.5 pipeline and the LoRA of ``train.py model=sd_lora``.

    The prompt goes to the pipeline as it is (``face`` is not used: this generator draws new faces).
    """

    def __init__(self, pretrained: str | Path, lora: str | Path | None = None, steps: int = 30,
                 guidance: float = 7.5, seed: int = 0, size: int | None = None, lora_scale: float = 1.0) -> None:
        from diffusers import StableDiffusionPipeline

        pretrained = sd15_pipeline_folder(pretrained, "generator.pretrained=<a local SD 1.5 folder>")
        lora = lora_folder(lora) if lora else None
        self.pipeline = StableDiffusionPipeline.from_pretrained(str(pretrained), safety_checker=None,
                                                                requires_safety_checker=False)
        if lora:
            self.pipeline.load_lora_weights(str(lora))
        self.pretrained, self.lora, self.steps, self.guidance = pretrained, lora, steps, guidance
        self.seed, self.size, self.lora_scale = seed, size, lora_scale

    def __call__(self, prompt: str, face: str | Path | None, out_dir: str | Path) -> tuple[None, dict]:
        """Write ``image.png`` and ``choice.json`` (prompt, seed, weights) to ``out_dir``."""
        import torch

        out_dir = Path(out_dir)
        image = self.pipeline(prompt, num_inference_steps=self.steps, guidance_scale=self.guidance,
                              height=self.size, width=self.size, output_type="np",
                              generator=torch.Generator().manual_seed(self.seed),
                              cross_attention_kwargs={"scale": self.lora_scale}).images[0]
        path = save_image((image * 255).round().astype("uint8"), out_dir / "image.png")
        record = {"prompt": prompt, "generator": "sd_lora", "pretrained": str(self.pretrained),
                  "lora": str(self.lora) if self.lora else None, "seed": self.seed, "steps": self.steps,
                  "guidance": self.guidance, "outputs": {"image": str(path)}}
        write_text(out_dir / "choice.json", json.dumps(record, ensure_ascii=False, indent=1))
        return None, record

"""Strict weight loading: every reload says what differs (missing, unexpected, mis-shaped tensors) instead of
initialising or dropping tensors silently; deliberate partial loads (heads without their text tower, LoRA-only
checkpoints, LoRA files) are checked against exactly what they may leave out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from complexface.errors import UserError
from complexface.weights import CheckpointMismatchError, check_state, key_summary, load_sd15_models
from tests.test_train import build_tiny_sd


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("loading_sd") / "sd")


def rewrite(path: Path, change) -> None:
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_the_message_names_the_first_keys_and_counts_each_kind():
    assert key_summary(["a", "b"]) == "2 (a, b)"
    assert key_summary([f"k{i}" for i in range(8)], limit=3) == "8 (k0, k1, k2 and 5 more)"
    expected = {f"head.{i}.weight": torch.zeros(2, 2) for i in range(7)} | {"tower.w": torch.zeros(1)}
    found = {k: v for k, v in expected.items() if k not in ("head.0.weight", "head.1.weight")}
    found |= {"head.6.weight": torch.zeros(3, 2), "stray.bias": torch.zeros(1)}
    with pytest.raises(CheckpointMismatchError) as err:
        check_state("ckpt.safetensors", expected, found)
    assert isinstance(err.value, UserError) and str(err.value) == (
        "ckpt.safetensors does not match the model it is loaded into: missing 2 (head.0.weight, head.1.weight); "
        "unexpected 1 (stray.bias); wrong shape 1 (head.6.weight [3, 2] (expected [2, 2]))")
    check_state("partial", expected, {"tower.w": torch.zeros(1)}, elsewhere=("head.",))  # a declared partial load
    with pytest.raises(CheckpointMismatchError, match=r"missing 1 \(tower.w\); unexpected 7 \(head.0.weight, "):
        check_state("partial", expected, {k: v for k, v in expected.items() if k != "tower.w"}, elsewhere=("head.",))


@pytest.fixture(scope="module")
def expression_clip_export(tmp_path_factory) -> Path:
    from complexface.models.expression_clip import ExpressionCLIP

    torch.manual_seed(0)
    return ExpressionCLIP(mesh=False, identity=False).save_pretrained(tmp_path_factory.mktemp("eclip") / "model")


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.pop("image_head.3.bias"), r"heads.safetensors does not match .*: missing 1 \(image_head.3.bias\)$"),
    (lambda t: t.update({"image_head.3.weight": torch.zeros(64, 256)}),
     r"wrong shape 1 \(image_head.3.weight \[64, 256\] \(expected \[128, 256\]\)\)"),
    (lambda t: t.update({"text.model.pooler.dense.bias": torch.zeros(384)}),
     r"unexpected 1 \(text.model.pooler.dense.bias\)$"),  # the text tower loads from text_model/, not from here
])
def test_expression_clip_heads_load_strictly(expression_clip_export, tmp_path, change, message):
    import shutil

    from complexface.models.expression_clip import HEADS_FILE, load_expression_clip, text_embeddings

    folder = Path(shutil.copytree(expression_clip_export, tmp_path / "model"))
    reloaded = load_expression_clip(folder)  # intact: the heads reload exactly (only text.* comes from elsewhere)
    torch.testing.assert_close(reloaded.state_dict()["image_head.3.weight"],
                               load_file(str(folder / HEADS_FILE))["image_head.3.weight"])
    assert text_embeddings(reloaded, ["a"]).shape == (1, 128)
    rewrite(folder / HEADS_FILE, change)
    with pytest.raises(CheckpointMismatchError, match=message):
        load_expression_clip(folder)


def test_a_text_tower_missing_a_tensor_is_refused_not_reinitialised(expression_clip_export, tmp_path):
    import shutil

    from complexface.models.text import SentenceEncoder

    folder = Path(shutil.copytree(expression_clip_export / "text_model", tmp_path / "text_model"))
    rewrite(folder / "model.safetensors", lambda t: t.pop("encoder.layer.5.output.dense.weight"))
    with pytest.raises(CheckpointMismatchError, match=r"text model in .*text_model does not match the model it is "
                                                      r"loaded into: missing 1 \(encoder.layer.5.output.dense.weight\)"):
        SentenceEncoder(folder)


def test_sd15_components_load_strictly(tiny_sd, tmp_path):
    import shutil

    models = load_sd15_models(tiny_sd)
    assert set(models) == {"text_encoder", "vae", "unet"}
    folder = Path(shutil.copytree(tiny_sd, tmp_path / "sd_unet"))
    rewrite(folder / "unet" / "diffusion_pytorch_model.safetensors", lambda t: t.pop("conv_out.bias"))
    with pytest.raises(CheckpointMismatchError, match=r"UNet in .*unet does not match .*: missing 1 \(conv_out.bias\)"):
        load_sd15_models(folder)  # diffusers itself would only warn and initialise it at random
    folder = Path(shutil.copytree(tiny_sd, tmp_path / "sd"))
    rewrite(folder / "text_encoder" / "model.safetensors", lambda t: t.pop("encoder.layers.1.mlp.fc2.weight"))
    with pytest.raises(CheckpointMismatchError, match=r"text encoder in .*text_encoder does not match .*"
                                                      r"missing 1 \((text_model\.)?encoder.layers.1.mlp.fc2.weight\)"):
        load_sd15_models(folder)


def test_sd_lora_checkpoints_must_hold_exactly_the_lora_weights(tiny_sd):
    from complexface.models.sd_lora import SDLoRA

    torch.manual_seed(0)
    module = SDLoRA(str(tiny_sd), rank=4, alpha=4)
    saved = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(saved)
    assert saved["state_dict"] and all("lora" in k for k in saved["state_dict"])
    module.on_load_checkpoint(saved)  # the intended partial checkpoint passes
    other = {"state_dict": SDLoRA(str(tiny_sd), rank=2, alpha=2).state_dict()}
    SDLoRA.on_save_checkpoint(module, other)
    with pytest.raises(CheckpointMismatchError, match=r"sd_lora checkpoint \(LoRA rank 4 on .*\).*wrong shape "
                                                      rf"{len(saved['state_dict'])} \("):
        module.on_load_checkpoint(other)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected \d+ \((text_encoder|unet|vae)\."):
        module.on_load_checkpoint({"state_dict": module.state_dict()})  # a full state dict is not a LoRA checkpoint
    some = dict(list(saved["state_dict"].items())[2:])
    with pytest.raises(CheckpointMismatchError, match=r"missing 2 \(unet\..*lora"):
        module.on_load_checkpoint({"state_dict": some})


def test_a_lora_file_that_does_not_fit_the_unet_is_refused(tiny_sd, tmp_path):
    from complexface.generation import SDLoRAGenerator
    from complexface.models.sd_lora import SDLoRA
    from complexface.weights import LORA_FILE

    torch.manual_seed(0)
    SDLoRA(str(tiny_sd), rank=4, alpha=4).save_pretrained(tmp_path / "lora")
    generator = SDLoRAGenerator(tiny_sd, tmp_path / "lora", device="cpu", steps=1)  # fits: loads
    assert "lora" in generator.pipeline.unet.peft_config
    path = tmp_path / "lora" / LORA_FILE
    key = next(k for k in load_file(str(path)) if k.startswith("unet.") and "lora" in k)
    rewrite(path, lambda t: t.update({"unet.nowhere.lora.down.weight": t[key].clone()}))
    with pytest.raises(CheckpointMismatchError, match=r"pytorch_lora_weights.safetensors"):
        SDLoRAGenerator(tiny_sd, tmp_path / "lora", device="cpu", steps=1)

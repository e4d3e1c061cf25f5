"""One W&B schema for both tracking stacks (``mode: offline|online|disabled``) and one device/dtype policy for
every GPU model (``complexface/devices.py``)."""

from __future__ import annotations

import pytest
import torch

import train
from complexface.devices import resolve_device, resolve_dtype
from complexface.errors import user_error
from complexface.settings import SettingError
from tests.conftest import compose_config


def test_auto_dtype_is_bf16_on_cuda_with_bf16_fp16_on_other_cuda_fp32_on_cpu(monkeypatch):
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16  # an explicit dtype is honoured
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(SettingError, match="unknown dtype 'half'; use auto, float32"):
        resolve_dtype("half", torch.device("cpu"))
    with pytest.raises(SettingError, match="unknown device"):
        resolve_device("tpu:x")


def test_magicface_and_sd_generation_share_the_policy_and_its_config_keys():
    from complexface import generation
    from complexface.editors.magicface import editor as magicface

    assert magicface.resolve_dtype is generation.resolve_dtype is resolve_dtype
    assert magicface.resolve_device is generation.resolve_device is resolve_device
    editor = compose_config("edit", ["editor=magicface"]).editor
    sd = compose_config("generate", ["generator=sd_lora", "generator.pretrained=/sd15"]).generator
    assert (editor.dtype, editor.device) == (sd.dtype, sd.device) == ("auto", "auto")


def test_both_tracking_stacks_take_mode(tmp_path):
    edit_logger = compose_config("edit", ["logger=wandb"]).logger
    cfg = compose_config("train", ["data.root=/data", "train_logger=wandb"])
    assert edit_logger.mode == cfg.train_logger.mode == "offline"
    cfg.run_dir = str(tmp_path)
    logger = train.build_logger(cfg, tmp_path)
    assert logger._wandb_init["mode"] == "offline" and logger._offline
    for mode in ("online", "disabled"):
        logger = train.build_logger(compose_config("train", ["data.root=/data", f"train_logger.mode={mode}",
                                                             f"run_dir={tmp_path}"]), tmp_path)
        assert logger._wandb_init["mode"] == mode and not logger._offline


@pytest.mark.parametrize(("override", "message"), [
    ("train_logger.offline=false", ("train_logger.offline=False is no longer read: use train_logger.mode=offline|"
                                    "online|disabled (the key logger.mode has for edit.py and evaluate.py), e.g. "
                                    "train_logger.mode=online")),
    ("train_logger.mode=dryrun", "train_logger.mode must be one of offline, online, disabled, got 'dryrun'"),
])
def test_the_old_key_and_unknown_modes_are_refused_naming_the_key(tmp_path, override, message):
    cfg = compose_config("train", ["data.root=/data", override, f"run_dir={tmp_path}"])
    with pytest.raises(Exception) as err:
        train.build_logger(cfg, tmp_path)
    cause = user_error(err.value)
    assert isinstance(cause, SettingError) and str(cause) == message


def test_the_edit_tracker_refuses_an_unknown_mode(tmp_path):
    from complexface.tracking import WandbTracker

    with pytest.raises(SettingError, match="logger.mode must be one of offline, online, disabled, got 'dryrun'"):
        WandbTracker(tmp_path, mode="dryrun")

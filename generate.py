"""Free text -> a complex expression on a face: python generate.py prompt="smiling on the surface, angry inside"."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from complexface.atomic import write_text
from complexface.errors import exit_on_user_error


def generate(cfg: DictConfig, run_dir: Path) -> dict:
    """Choose a recipe for ``cfg.prompt``, apply it to ``cfg.face``; returns what ``choice.json`` holds."""
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    generator = instantiate(cfg.generator, _convert_="all")
    return generator(cfg.prompt, cfg.face, run_dir)[1]


def quote_prompt(argv: list[str]) -> list[str]:
    """Quote a bare ``prompt=...`` argument, so commas, spaces and Japanese need no Hydra quoting."""
    def quoted(text: str) -> str:
        return f"'{text}'" if "'" not in text else '"' + text.replace('"', '\\"') + '"'

    return [f"prompt={quoted(a[7:])}" if a.startswith("prompt=") and a[7:8] not in ("'", '"') else a for a in argv]


def top_three(record: dict) -> list[str]:
    """The chosen recipe and the first two runners-up of a ``choice.json`` record, one line each:
    ``1. polite_smile (felt neutral, shown joy) 43%``."""
    top = [record, *record.get("runner_ups", [])][:3]
    return [f"{i}. {r['recipe_id']} (felt {r['felt']}, shown {r['displayed']}) {r['confidence']:.0%}"
            for i, r in enumerate(top, 1)]


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    record = exit_on_user_error(lambda: generate(cfg, Path(HydraConfig.get().runtime.output_dir)))
    if "recipe_id" in record:
        aus = ", ".join(f"{au}={v:g}" for au, v in record["aus"].items())
        print(f"recipe: {record['recipe_id']} (felt {record['felt']}, displayed {record['displayed']}) "
              f"confidence {record['confidence']:.2f}, score {record['score']:.3f} [{record['language']}: "
              f"\"{record['matched']}\"]")
        print(f"AUs: {aus}")
        print("\n".join(top_three(record)))
    outputs = list(record["outputs"].values())
    print(f"wrote: {', '.join(outputs)} and {Path(outputs[0]).parent / 'choice.json'}")

if __name__ == "__main__":
    sys.argv = quote_prompt(sys.argv)
    main()

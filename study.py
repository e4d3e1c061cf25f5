"""Human recognition studies: python study.py action=create|links|serve|simulate|export|analyze study.dir=DIR ...

create  input=RUN         the design from an edit or generate run: stimuli, counterbalanced lists, database
links   n=40              one private link per rater (printed, and written to <dir>/links/*.csv)
serve                     the rater pages on server.host:server.port (loopback; a TLS proxy in front)
simulate raters=20        simulated raters through the real HTTP interface, with planted recognition rates
export                    <dir>/export/answers.csv|json (one row per rater x trial) and raters.csv
analyze                   export, then statistics, plots, report.html and a W&B run
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from complexface.errors import exit_on_user_error
from complexface.study.folder import StudyError, StudyFolder

ACTIONS = ("create", "links", "serve", "simulate", "export", "analyze")


def run(cfg: DictConfig) -> dict:
    """Do ``cfg.action`` on the study folder ``cfg.study.dir``; returns what it made (printed by ``main``)."""
    action = cfg.action
    if action not in ACTIONS:
        raise StudyError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    folder = StudyFolder(cfg.study.dir)
    if action == "create":
        from complexface.study.design import create

        if not cfg.input:
            raise StudyError("action=create needs input=<an edit.py or generate.py run dir>")
        design = create(instantiate(cfg.study, _convert_="all"), cfg.input, force=cfg.force)
        sizes = sorted({len(lst) for lst in design.lists})
        return {"study": str(folder.path), "stimuli": len(design.stimuli), "conditions": len(design.conditions),
                "lists": len(design.lists), "faces_per_list": sizes, "practice": len(design.practice),
                "attention": design.attention_trials, "missing_cells": len(design.missing)}
    folder.require()
    settings = instantiate(cfg.server, _convert_="all")
    if action == "links":
        from complexface.study.tokens import Keys, add_raters, entry_urls, write_links

        links = add_raters(folder, cfg.n, cfg.group, cfg.language)
        path = write_links(folder, links, settings.base_url)
        return {"links": [link.url(settings.base_url) for link in links], "csv": str(path),
                "platform_urls": entry_urls(Keys(folder.secret()), settings.base_url)}
    if action == "serve":
        from complexface.study.server import serve
        from complexface.web import loopback

        if not loopback(settings.host):
            warnings.warn(f"serving on {settings.host}: plain HTTP carries the rater tokens; serve on 127.0.0.1 "
                          f"behind a TLS reverse proxy instead", stacklevel=1)
        print(f"serving {folder.path} on http://{settings.host}:{settings.port} (Ctrl-C stops)", flush=True)
        serve(folder.path, settings)
        return {}
    if action == "simulate":
        simulated = instantiate(cfg.simulate, _convert_="all")
        result = simulated.run(folder.path, cfg.raters, settings=replace(settings, port=0))
        if result["errors"]:
            raise StudyError(f"{len(result['errors'])} simulated rater(s) failed, first: {result['errors'][0]}")
        return {k: result[k] for k in ("raters", "completed", "answers", "replays", "requests", "seconds", "planted")}
    from complexface.study.export import export

    written = export(folder.path)
    if action == "export":
        return {k: str(v) for k, v in written.items()}
    from complexface.study.analysis import analyze

    return analyze(folder.path, OmegaConf.to_container(cfg.study.analysis, resolve=True))


@hydra.main(version_base="1.3", config_path="conf", config_name="study")
def main(cfg: DictConfig) -> None:
    result = exit_on_user_error(lambda: run(cfg))
    if cfg.action == "links":
        print("\n".join(result["links"]))
        print(f"links: {result['csv']} (keep it private: the tokens are stored only hashed)")
        urls = result["platform_urls"]
        print(f"prolific entry link (study URL): {urls['prolific']}")
        print(f"mturk entry link (ExternalQuestion URL; MTurk adds assignmentId, workerId, hitId, turkSubmitTo): "
              f"{urls['mturk']}")
    elif result:
        print(json.dumps(result, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()

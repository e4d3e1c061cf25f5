"""The AU editor page: python app.py [server.port=8010] (serves on loopback and prints the URL; Ctrl-C stops).

One page to choose a bundled face or upload a photo, drag one slider per AU with a live preview, load catalog
recipes or find one from free English or Japanese text, measure the edit and export it. The page uses the app's
JSON API (``complexface/app/server.py``), which scripts can use too.
"""

from __future__ import annotations

import warnings

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from complexface.errors import exit_on_user_error


def build(cfg: DictConfig):
    """The app from the config: settings, the one warp editor, the measurer, and lazy retriever and MagicFace."""
    from complexface.app.server import create_app

    settings = instantiate(cfg.server, _convert_="all")
    measurer = instantiate(cfg.measure.measurer) if cfg.measure.enabled else None
    magicface, retriever = cfg.get("magicface"), cfg.retriever  # made on first use: heavy imports, model files
    return create_app(settings, instantiate(cfg.editor, _convert_="all"), measurer,
                      lambda: instantiate(retriever, _convert_="all"),
                      (lambda: instantiate(magicface, _convert_="all")) if magicface else None), settings


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg: DictConfig) -> None:
    from complexface.app.server import serve
    from complexface.web import loopback

    app, settings = exit_on_user_error(lambda: build(cfg))
    if not loopback(settings.host):
        warnings.warn(f"serving on {settings.host}: uploads travel in plain HTTP; serve on 127.0.0.1 behind a TLS "
                      f"reverse proxy instead", stacklevel=1)
    print(f"complexface AU editor: http://{settings.host}:{settings.port}/  (Ctrl-C stops)", flush=True)
    try:
        serve(app, settings)
    finally:
        app.state.editor_app.close()


if __name__ == "__main__":
    main()

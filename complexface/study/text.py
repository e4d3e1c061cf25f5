"""The rater-facing words in English and Japanese (``assets/study/text.yaml``), with a study's own overrides."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml

from complexface.settings import require

TEXT_FILE = Path(__file__).resolve().parent.parent / "assets" / "study" / "text.yaml"
LANGUAGES = ("en", "ja")


@lru_cache(maxsize=1)
def _bundled() -> dict:
    return yaml.safe_load(TEXT_FILE.read_text(encoding="utf-8"))


def check_language(language: str, what: str = "study.language") -> str:
    require(language in LANGUAGES, f"{what} must be one of {', '.join(LANGUAGES)}, got {language!r}")
    return language


class _Keep(dict):
    """Placeholders a study's own text does not fill stay as written (``{x}``) instead of failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(text: str, values: dict) -> str:
    """``text`` with its ``{placeholders}`` filled; a study's own text with stray braces is shown as written."""
    try:
        return text.format_map(_Keep(values))
    except (ValueError, IndexError, AttributeError):
        return text


class Texts:
    """The words of one language: ``texts["next"]``, ``texts.format("trial_label", i=3, n=20)``,
    ``texts.option("joy")``."""

    def __init__(self, language: str, overrides: Mapping | None = None) -> None:
        self.language = check_language(language)
        words = dict(_bundled()[language])
        own = dict((overrides or {}).get(language) or {})
        options = {**words.get("options", {}), **dict(own.pop("options", None) or {})}
        unknown = sorted(set(own) - set(words))
        require(not unknown, f"study.texts.{language}: unknown key(s) {', '.join(unknown)}; known: {', '.join(words)}")
        words.update(own)
        words["options"] = options
        self.words = words

    def __getitem__(self, key: str):
        return self.words[key]

    def format(self, key: str, **values) -> str:
        return _fill(str(self.words[key]), values)

    def paragraphs(self, key: str, **values) -> list[str]:
        value = self.words[key]
        return [_fill(str(p), values) for p in ([value] if isinstance(value, str) else value)]

    def option(self, key: str) -> str:
        return str(self.words["options"].get(key, key))

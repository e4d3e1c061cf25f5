"""Complex-expression recipes: felt vs displayed emotion as AU vectors, with sources and captions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from complexface.au import AUS, AUEdit, AUError, parse_edit
from complexface.errors import UserError

CATALOG = Path(__file__).resolve().parent / "assets" / "expressions.yaml"
LANGUAGES = ("en", "ja")


class CatalogError(UserError, ValueError):
    """A recipe or catalog that cannot be used; the message names the recipe and the field."""


@dataclass(frozen=True)
class Recipe:
    """One expression: AUs over the 12 editable units, what it approximates, where it comes from."""

    id: str
    name_en: str
    name_ja: str
    felt: str
    displayed: str
    aus: AUEdit
    needs: Mapping[str, str]
    """Non-editable AUs the real expression uses -> how the recipe approximates them."""
    citation: str
    captions_en: tuple[str, ...]
    captions_ja: tuple[str, ...]

    def captions(self, language: str) -> tuple[str, ...]:
        if language not in LANGUAGES:
            raise CatalogError(f"caption language must be one of {', '.join(LANGUAGES)}, got {language!r}")
        return self.captions_en if language == "en" else self.captions_ja

    @property
    def complex(self) -> bool:
        """Whether the felt emotion differs from the displayed one."""
        return self.felt != self.displayed


def _text(raw: Mapping, key: str, rid: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"recipe {rid!r}: '{key}' is missing or empty")
    return value.strip()


def parse_recipe(raw: Mapping) -> Recipe:
    """Validate one recipe mapping; raises CatalogError (or AUError) naming the recipe and field."""
    rid = str(raw.get("id") or "").strip()
    if not rid:
        raise CatalogError(f"a recipe has no 'id': {dict(raw)}")
    try:
        aus = parse_edit(dict(raw.get("aus") or {}))
    except AUError as err:
        raise AUError(f"recipe {rid!r}: {err}") from None
    if not aus:
        raise CatalogError(f"recipe {rid!r}: 'aus' is empty; give at least one editable AU")
    needs = {}
    for key, how in dict(raw.get("needs") or {}).items():
        unit = AUS.get(str(key).upper())
        if unit is None or unit.editable:
            raise CatalogError(f"recipe {rid!r}: 'needs' lists {key!r}; it is for non-editable FACS AUs "
                               f"(e.g. AU7, AU10, AU14, AU23, AU24) with how the recipe approximates them")
        if not isinstance(how, str) or not how.strip():
            raise CatalogError(f"recipe {rid!r}: say how the recipe approximates {unit.key}")
        needs[unit.key] = how.strip()
    captions = {}
    for language in LANGUAGES:
        texts = tuple(str(t).strip() for t in raw.get(f"captions_{language}") or () if str(t).strip())
        if not texts:
            raise CatalogError(f"recipe {rid!r}: no captions_{language}; give at least one caption")
        captions[language] = texts
    return Recipe(rid, _text(raw, "name_en", rid), _text(raw, "name_ja", rid), _text(raw, "felt", rid),
                  _text(raw, "displayed", rid), aus, needs, _text(raw, "citation", rid),
                  captions["en"], captions["ja"])


def load_catalog(path: str | Path | None = None) -> dict[str, Recipe]:
    """All recipes of a catalog YAML (default: the bundled one), by id."""
    path = Path(path) if path else CATALOG
    if not path.exists():
        raise CatalogError(f"catalog not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    recipes = [parse_recipe(r) for r in data.get("recipes") or []]
    if not recipes:
        raise CatalogError(f"{path} has no recipes")
    ids = [r.id for r in recipes]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise CatalogError(f"{path}: recipe ids used twice: {', '.join(duplicated)}")
    return {r.id: r for r in recipes}


def prototypes(catalog: Mapping[str, Recipe]) -> dict[str, str]:
    """Emotion -> the id of its prototype (control) recipe: a recipe ``<name>_prototype``, named by its felt
    emotion (``{"joy": "happiness_prototype", "anger": "anger_prototype", ...}``)."""
    return {r.felt: rid for rid, r in catalog.items() if rid.endswith("_prototype") and not r.complex}


def select_recipes(only: Sequence[str] | None = None, path: str | Path | None = None) -> dict[str, Recipe]:
    """The recipes of ``only`` (in that order; all when empty), CatalogError naming unknown ids."""
    catalog = load_catalog(path)
    if not only:
        return catalog
    unknown = [r for r in only if r not in catalog]
    if unknown:
        raise CatalogError(f"unknown recipe id(s) {', '.join(unknown)}; known: {', '.join(catalog)}")
    return {r: catalog[r] for r in only}

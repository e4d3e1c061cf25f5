"""FACS Action Units: the registry, the AU edit type and its parsers.

An *edit* maps AU names to signed relative intensities on the 0-5 FACS/DISFA scale
(target minus source), as MagicFace takes them: ``{"AU6": 3, "AU12": 3}``.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from complexface.errors import UserError

MAX_INTENSITY = 10.0
"""Largest |intensity| accepted (MagicFace's recommended range)."""
SAFE_INTENSITY = 5.0
"""Above this |intensity| edits often break: a warning is issued."""


@dataclass(frozen=True)
class ActionUnit:
    """One FACS Action Unit."""

    number: int
    name: str
    regions: tuple[str, ...]
    editable: bool

    @property
    def key(self) -> str:
        return f"AU{self.number}"


_UNITS = [
    ActionUnit(1, "inner brow raiser", ("brows", "forehead"), True),
    ActionUnit(2, "outer brow raiser", ("brows", "forehead"), True),
    ActionUnit(4, "brow lowerer", ("brows", "glabella", "upper lids"), True),
    ActionUnit(5, "upper lid raiser", ("upper lids",), True),
    ActionUnit(6, "cheek raiser", ("cheeks", "lower lids"), True),
    ActionUnit(9, "nose wrinkler", ("nose", "upper lip", "brows"), True),
    ActionUnit(12, "lip corner puller", ("lip corners", "cheeks"), True),
    ActionUnit(15, "lip corner depressor", ("lip corners",), True),
    ActionUnit(17, "chin raiser", ("chin", "lower lip"), True),
    ActionUnit(20, "lip stretcher", ("lip corners", "lips"), True),
    ActionUnit(25, "lips part", ("lips",), True),
    ActionUnit(26, "jaw drop", ("jaw", "lips", "chin"), True),
    ActionUnit(7, "lid tightener", ("lids",), False),
    ActionUnit(10, "upper lip raiser", ("upper lip",), False),
    ActionUnit(11, "nasolabial deepener", ("cheeks",), False),
    ActionUnit(13, "sharp lip puller", ("lip corners",), False),
    ActionUnit(14, "dimpler", ("lip corners",), False),
    ActionUnit(16, "lower lip depressor", ("lower lip",), False),
    ActionUnit(18, "lip pucker", ("lips",), False),
    ActionUnit(22, "lip funneler", ("lips",), False),
    ActionUnit(23, "lip tightener", ("lips",), False),
    ActionUnit(24, "lip presser", ("lips",), False),
    ActionUnit(27, "mouth stretch", ("jaw",), False),
    ActionUnit(28, "lip suck", ("lips",), False),
    ActionUnit(43, "eyes closed", ("lids",), False),
    ActionUnit(45, "blink", ("lids",), False),
    ActionUnit(46, "wink", ("lids",), False),
]

AUS: dict[str, ActionUnit] = {u.key: u for u in _UNITS}
"""Every known AU by key (``"AU12"``)."""
EDITABLE: tuple[str, ...] = tuple(u.key for u in _UNITS if u.editable)
"""The 12 editable AUs in MagicFace order: AU1 AU2 AU4 AU5 AU6 AU9 AU12 AU15 AU17 AU20 AU25 AU26."""
BILATERAL: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU15", "AU20")
"""Editable AUs with a left and a right side: ``AU12L``/``AU12R`` edit one side (from the person's point of
view); AU17, AU25 and AU26 act on the midline."""
SIDES: tuple[str, ...] = ("L", "R")


class AUError(UserError, ValueError):
    """A user-facing problem with an AU edit."""


def _valid_list() -> str:
    return f"{', '.join(EDITABLE)} (one side: {', '.join(b + 'L' for b in BILATERAL)} and the same with R)"


def split_side(key: str) -> tuple[str, str]:
    """``"AU12L"`` -> ``("AU12", "L")``, ``"AU12"`` -> ``("AU12", "")`` (a normalised key)."""
    return (key[:-1], key[-1]) if key[-1] in SIDES else (key, "")


def normalize_name(name: object) -> str:
    """``"au12"``, ``"12"``, ``12`` -> ``"AU12"``, ``"au12l"`` -> ``"AU12L"``; raises AUError for unknown or
    non-editable AUs and for a side of a midline AU."""
    text = str(name).strip().upper().replace(" ", "")
    found = re.fullmatch(r"(?:AU)?0*(\d+)([LR]?)", text)
    base, side = (f"AU{int(found.group(1))}", found.group(2)) if found else (text, "")
    if base not in AUS:
        raise AUError(f"unknown AU {name!r}; editable AUs are: {_valid_list()}")
    unit = AUS[base]
    if not unit.editable:
        raise AUError(
            f"{base} ({unit.name}) is a FACS AU but not editable here; editable AUs are: {_valid_list()}"
        )
    if side and base not in BILATERAL:
        raise AUError(f"{base} ({unit.name}) acts on the midline and has no sides; per-side AUs are: "
                      f"{', '.join(b + 'L/R' for b in BILATERAL)}")
    return base + side


def _intensity(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise AUError(f"intensity for {name} must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AUError(f"intensity for {name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or abs(number) > MAX_INTENSITY:
        raise AUError(
            f"intensity {value!r} for {name} is out of range; use a value in "
            f"[-{MAX_INTENSITY:g}, {MAX_INTENSITY:g}] (relative change on the 0-5 FACS scale)"
        )
    return number


@dataclass(frozen=True)
class AUEdit:
    """A signed relative AU intensity change, e.g. ``AUEdit({"AU6": 3, "AU12": 3})``.

    Keys are normalised and validated; zero entries are dropped; order follows EDITABLE, a bilateral AU's
    sides (``AU12L``, ``AU12R``: one side, from the person's point of view) after it. An AU is given either
    for both sides or per side, not both.
    """

    values: Mapping[str, float]

    def __post_init__(self) -> None:
        clean: dict[str, float] = {}
        for raw, value in dict(self.values).items():
            key = normalize_name(raw)
            if key in clean:
                raise AUError(f"{key} is given twice in one edit")
            clean[key] = _intensity(value, key)
        for base in BILATERAL:
            if base in clean and any(base + side in clean for side in SIDES):
                raise AUError(f"{base} is given both for both sides and per side; write {base}=v for both sides "
                              f"or {base}L=v, {base}R=w for each")
        big = [k for k, v in clean.items() if abs(v) > SAFE_INTENSITY]
        if big:
            warnings.warn(
                f"{', '.join(big)} beyond +-{SAFE_INTENSITY:g}: edits this strong may break the face",
                stacklevel=3,
            )
        order = [key for au in EDITABLE for key in (au, *(au + side for side in SIDES))]
        ordered = {k: clean[k] for k in order if k in clean and clean[k] != 0}
        object.__setattr__(self, "values", ordered)

    def __bool__(self) -> bool:
        return bool(self.values)

    def __hash__(self) -> int:
        return hash(tuple(self.values.items()))

    def vector(self) -> list[float]:
        """The 12-vector in MagicFace order; a one-sided value counts half (the mean of the two sides)."""
        return [float(self.values.get(k, sum(self.values.get(k + side, 0.0) for side in SIDES) / 2))
                for k in EDITABLE]

    @property
    def sided(self) -> bool:
        """Whether any AU is given per side (``AU12L``): editors without sides cannot make it."""
        return any(split_side(k)[1] for k in self.values)

    def scaled(self, factor: float) -> AUEdit:
        return AUEdit({k: v * factor for k, v in self.values.items()})

    @property
    def label(self) -> str:
        """Canonical text form, e.g. ``AU6+AU12=2+2``; ``neutral`` for the empty edit."""
        if not self.values:
            return "neutral"
        names = "+".join(self.values)
        return f"{names}=" + "+".join(f"{v:g}" for v in self.values.values())

    @property
    def slug(self) -> str:
        """File-name-safe label, e.g. ``AU6+AU12_2+2`` (``m`` marks negatives)."""
        return self.label.replace("=", "_").replace("-", "m")

    def __str__(self) -> str:
        return self.label


def from_names_values(names: str | Iterable[object], values: str | Iterable[object]) -> AUEdit:
    """MagicFace CLI style: ``("AU6+AU12", "3+3")`` or lists; lengths must match."""
    name_list = [n for n in re.split(r"[+,\s]+", names.strip())] if isinstance(names, str) else list(names)
    value_list = _split_values(values) if isinstance(values, str) else list(values)
    name_list = [n for n in name_list if str(n) != ""]
    if len(name_list) != len(value_list):
        raise AUError(
            f"{len(name_list)} AU names but {len(value_list)} intensities "
            f"({names!r} vs {values!r}); give one intensity per AU"
        )
    return AUEdit(dict(zip(name_list, value_list, strict=True)))


def _split_values(text: str) -> list[str]:
    """``"3+3"``, ``"3+-2"``, ``"-2,1"`` -> list of value strings (a sign after '+' belongs to the value)."""
    text = text.replace(" ", "")
    return re.split(r"(?<=[0-9.])[+,]", text) if text else []


def parse_edit(spec: object) -> AUEdit:
    """Parse one edit from text, a mapping, a ``(names, values)`` pair or an AUEdit.

    Accepted text: ``"AU6+AU12=3+3"``, ``"AU4=-2"``, ``"AU12=3,AU6=2"``, ``"AU12:3 AU6:2"``,
    ``"neutral"``; ``:`` works wherever ``=`` does (handy in Hydra overrides, which reserve ``=``).
    Raises AUError with the list of valid AUs on any mistake.
    """
    if isinstance(spec, AUEdit):
        return spec
    if isinstance(spec, Mapping):
        return AUEdit(dict(spec))
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and not isinstance(spec[0], (int, float)):
        return from_names_values(spec[0], spec[1])
    if not isinstance(spec, str):
        raise AUError(f"cannot read an AU edit from {spec!r}; write e.g. 'AU6+AU12=3+3' or 'AU4=-2'")
    text = spec.strip()
    if text.lower() in ("", "neutral", "none", "0"):
        return AUEdit({})
    names_values = re.fullmatch(r"([A-Za-z0-9+\s]+?)\s*[=:]\s*([-+0-9.eE,\s]+)", text)
    if names_values:
        return from_names_values(*names_values.groups())
    tokens = [t for t in re.split(r"[,\s]+", text) if t]
    pairs = [re.split(r"[=:]", t) for t in tokens]
    if any(len(p) != 2 for p in pairs):
        raise AUError(f"cannot read AU edit {spec!r}; write e.g. 'AU6+AU12=3+3', 'AU4=-2' or 'AU12=3,AU6=2'")
    return AUEdit(dict(pairs))

"""Editor calibration from measured edits: response curves and a linear gain matrix per editor and group.

Reads a metrics table (``metrics.csv``'s columns plus ``editor``); read in turn by the evaluation report and by
closed-loop editing (``complexface.closed_loop`` starts from the inverse of ``Calibration.gain``). The gain G models
the measured change d of the 12 editable AUs as ``d ~ G r`` for a request r (rows = measured AU, columns = requested
AU, EDITABLE order).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from complexface.atomic import write_text
from complexface.au import EDITABLE, parse_edit
from complexface.runs import OK
from complexface.settings import SettingError
from complexface.stats import mean_ci95

VERSION = 1
ALL = "all"
"""The group of every face."""
RIDGE = 1.0
"""Weight of the identity prior on the gain, in squared requested intensity (as much as one edit at intensity 1)."""
REQ = [f"req_{au}" for au in EDITABLE]
DELTA = [f"d_{au}" for au in EDITABLE]


def family_and_intensity(edit: Mapping[str, float]) -> tuple[str, float]:
    """``{"AU6": 2, "AU12": 2}`` -> ("AU6+AU12", 2.0): the AUs edited and the signed largest value."""
    if not edit:
        return "", 0.0
    value = max(edit.values(), key=abs)
    return "+".join(edit), float(value)


def with_families(table: pd.DataFrame) -> pd.DataFrame:
    """Measured rows with ``family`` and ``intensity``; the zero edit joins every family at intensity 0."""
    ok = table[table["status"] == OK].copy()
    pairs = [family_and_intensity(parse_edit(e).values) for e in ok["edit"]]
    ok["family"], ok["intensity"] = [p[0] for p in pairs], [p[1] for p in pairs]
    families = sorted(f for f in ok["family"].unique() if f)
    zero = ok[ok["family"] == ""]
    spread = [zero.assign(family=f) for f in families]
    return pd.concat([ok[ok["family"] != ""], *spread], ignore_index=True) if families else ok


def fit_gain(requests: np.ndarray, changes: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """G minimising ``sum ||d - G r||^2 + ridge ||G - I||^2`` over rows r of ``requests`` and d of ``changes``.

    Columns never requested stay the identity; columns only ever requested together share their measured
    response, each keeping an equal part of its deviation from the identity.
    """
    eye = np.eye(requests.shape[1])
    return np.linalg.solve(requests.T @ requests + ridge * eye, requests.T @ changes + ridge * eye).T


@dataclass
class Curve:
    """Measured change of every AU against the requested intensity of one edit family."""

    intensity: list[float]
    n: list[int]
    request: dict[str, float]
    """Requested value of each AU of the family per unit of intensity (1.0 for ``AU6+AU12=k+k``)."""
    mean: dict[str, list[float]]
    ci95: dict[str, list[float]]


@dataclass
class GroupCalibration:
    """One editor on one group of faces: response curves per family, the gain G and the AUs that excited it."""

    curves: dict[str, Curve]
    gain: np.ndarray
    excited: list[str]
    n_edits: int

    @classmethod
    def from_rows(cls, data: pd.DataFrame) -> GroupCalibration:
        """From measured rows with families (``with_families``)."""
        curves = {}
        for family, part in data[data["family"] != ""].groupby("family"):
            moved = part[part["intensity"] != 0]
            if moved.empty:  # only the zero edit, spread to a family requested elsewhere
                continue
            steps = sorted(part.groupby("intensity"))
            keys = family.split("+")  # an AU, or one side of it (AU12L: read from d_AU12L)
            stats = {au: [mean_ci95(p[f"d_{au}"]) for _, p in steps] for au in dict.fromkeys([*EDITABLE, *keys])}
            asked = [parse_edit(e).values for e in moved["edit"]]
            curves[family] = Curve(
                intensity=[float(x) for x, _ in steps], n=[len(p) for _, p in steps],
                request={key: float(np.mean([a.get(key, 0.0) / i for a, i in zip(asked, moved["intensity"])]))
                         for key in keys},
                mean={au: [m for m, _ in s] for au, s in stats.items()},
                ci95={au: [h for _, h in s] for au, s in stats.items()})
        edits = data[(data["intensity"] != 0) & data[DELTA].notna().all(axis=1)]
        requests, changes = edits[REQ].to_numpy(float), edits[DELTA].to_numpy(float)
        excited = [au for au, column in zip(EDITABLE, requests.T, strict=True) if np.any(column != 0)]
        return cls(curves, fit_gain(requests, changes), excited, len(edits))

    def per_unit(self, family: str) -> np.ndarray:
        """Predicted change of every AU per unit of ``family``'s intensity: G along the family's request."""
        return self.gain @ np.array(parse_edit(self.curves[family].request).vector())

    def to_json(self) -> dict:
        curves = {family: {"intensity": c.intensity, "n": c.n, "request": c.request,
                           **{au: {"mean": _nums(c.mean[au]), "ci95": _nums(c.ci95[au])} for au in EDITABLE}}
                  for family, c in self.curves.items()}
        gain = {m: dict(zip(EDITABLE, _nums(row), strict=True)) for m, row in zip(EDITABLE, self.gain, strict=True)}
        return {"n_edits": self.n_edits, "excited": self.excited, "gain": gain, "curves": curves}

    @classmethod
    def from_json(cls, data: Mapping) -> GroupCalibration:
        curves = {family: Curve(intensity=[float(x) for x in c["intensity"]], n=[int(k) for k in c["n"]],
                                request={au: float(v) for au, v in c["request"].items()},
                                mean={au: [_float(v) for v in c[au]["mean"]] for au in EDITABLE},
                                ci95={au: [_float(v) for v in c[au]["ci95"]] for au in EDITABLE})
                  for family, c in data["curves"].items()}
        gain = np.array([[float(data["gain"][m][r]) for r in EDITABLE] for m in EDITABLE])
        return cls(curves, gain, [str(au) for au in data["excited"]], int(data["n_edits"]))


def _nums(values: Iterable[float]) -> list[float | None]:
    """JSON numbers (6 decimals), null for NaN."""
    return [None if math.isnan(v) else round(float(v), 6) for v in values]


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _dumps(data: dict) -> str:
    """Indented JSON with every list of numbers, and every flat mapping, on one line."""
    text = json.dumps(data, indent=1, allow_nan=False)
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    return re.sub(r"\{\s+([^\[\]{}]*?)\s+\}", lambda m: "{" + " ".join(m.group(1).split()) + "}", text) + "\n"


@dataclass
class Calibration:
    """Per editor and group (``"all"`` and each face group): response curves and gain matrix (``calibration.json``)."""

    editors: dict[str, dict[str, GroupCalibration]]

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> Calibration:
        """Fit every editor of a metrics table (it needs an ``editor`` column), on all faces and per group."""
        if "editor" not in table:
            raise SettingError("the metrics table has no 'editor' column; re-run evaluate.py on the edit run")
        data = with_families(table)
        return cls({str(editor): {ALL: GroupCalibration.from_rows(part),
                                  **{str(g): GroupCalibration.from_rows(p) for g, p in part.groupby("group")}}
                    for editor, part in data.groupby("editor")})

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read ``calibration.json``; SettingError if it is missing or not a calibration of this version."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingError(f"calibration file not found: {path}; evaluate.py writes calibration.json") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SettingError(f"{path} is not a calibration file ({err})") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise SettingError(f"{path} is not a version-{VERSION} calibration file; re-run evaluate.py to write one")
        try:
            editors = {str(e): {str(g): GroupCalibration.from_json(c) for g, c in groups.items()}
                       for e, groups in data["editors"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SettingError(f"{path} is not a valid calibration file (bad or missing {err})") from None
        if any(ALL not in groups for groups in editors.values()):
            raise SettingError(f"{path} is not a valid calibration file: an editor lacks the '{ALL}' group")
        return cls(editors)

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (JSON) atomically."""
        data = {"version": VERSION, "editors": {e: {g: c.to_json() for g, c in groups.items()}
                                                for e, groups in self.editors.items()}}
        return write_text(path, _dumps(data))

    def group(self, editor: str, group: str | None = None) -> GroupCalibration:
        """``editor``'s calibration on ``group`` (None or a group it has not seen: all faces)."""
        if editor not in self.editors:
            raise SettingError(f"no calibration for editor {editor!r}; this calibration has: "
                               f"{', '.join(sorted(self.editors)) or 'no editors'}")
        groups = self.editors[editor]
        return groups.get(group or ALL, groups[ALL])

    def gain(self, editor: str, group: str | None = None) -> np.ndarray:
        """The (12, 12) gain G (rows = measured AU, columns = requested AU, EDITABLE order)."""
        return self.group(editor, group).gain.copy()

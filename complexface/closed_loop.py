"""Closed-loop AU control: edit, measure what the edit really did, correct the request, repeat.

Every editor is conditioned once and hoped to respond as asked; this one wraps any editor (the
*inner* editor) and steers it with the project's own measurement. For a target change t (the
requested AUs; zero on every AU physically independent of them, ``au_change.leakage_aus``; AUs
coupled to the request are left free), it

1. starts from the calibration inverse: the request r0 that the inner editor's gain matrix G
   (``calibration.json`` from ``evaluate.py``, or the identity without one) predicts reaches t,
   steering the requested AUs and every independent AU that G predicts would leak;
2. edits with r, measures the change m (tracked landmarks, no identity), and stops when every
   requested AU is within ``tolerance`` (relative) of its target and the leakage (mean |m| over the
   independent AUs) is at most ``leakage`` per unit of the largest target;
3. otherwise updates its estimate J of the editor's response: after the first edit J is scaled by
   the face's overall responsiveness (measured against predicted change: an editor that responds at
   half strength on some faces does so for every AU), then every step applies Broyden's rank-one
   (secant) update (the first step's secant runs from the zero edit, which changes nothing); it
   asks for r + dr with J dr = t - m, solved over the AUs it steers: the requested ones and every
   independent AU that leaked beyond the tolerance;
4. repeats up to ``max_iters`` edits and keeps the iteration closest to the target.

Every iteration's request and measurement go into the run's manifest. The loop uses editors and
measurement; editors never import the measurer. Inner editors that cache per-face work (the warp
editor's fields, MagicFace's identity-encoder pass) reuse it across iterations.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from complexface.au import EDITABLE, MAX_INTENSITY, AUEdit
from complexface.calibration import Calibration
from complexface.editors.base import Edited, Editor
from complexface.faces.align import AlignedFace
from complexface.measure.au_change import leakage_aus
from complexface.measure.metrics import EditMeasurer
from complexface.settings import SettingError, require

INDEX = {au: i for i, au in enumerate(EDITABLE)}


@dataclass
class Loop:
    """One edit's loop state: target, free/steered AUs, response estimate and iterations so far."""

    target: AUEdit
    jacobian: np.ndarray
    request: np.ndarray
    iterations: list[dict] = field(default_factory=list)
    steered: set[int] = field(default_factory=set)
    """The AUs whose request the loop adjusts (once steered, always steered)."""
    best: tuple[float, int] | None = None
    """(score, iteration index) of the iteration closest to the target so far."""
    last: tuple[np.ndarray, np.ndarray] = (np.zeros(len(EDITABLE)), np.zeros(len(EDITABLE)))
    """(request, measured) of the previous iteration; the zero edit before the first."""
    done: bool = False

    @property
    def wanted(self) -> np.ndarray:
        return np.array(self.target.vector())

    @property
    def asked(self) -> list[str]:
        return list(self.target.values)

    @property
    def independent(self) -> list[str]:
        return leakage_aus(self.target)


class ClosedLoopEditor(Editor):
    """Steers ``inner`` with measurements until each edit reads as requested (module docstring).

    ``measurer``: an EditMeasurer (identity off); ``calibration``: a ``calibration.json`` whose
    entry for the inner editor (``calibration_editor``, default the inner editor's name) gives the
    starting gain, or None for the identity; ``group``: the calibration group to start from ("all"
    by default; the loop corrects per face in any case); ``tolerance``: relative error allowed on each
    requested AU; ``leakage``: mean |change| allowed on the independent AUs, per unit requested;
    ``lock``: regions locked after every inner edit (``editors.lock``), so the loop measures the
    locked result.
    """

    name = "closed_loop"
    sides = False  # the loop steers the 12 AUs (both sides together)

    def __init__(self, inner: Editor, measurer: EditMeasurer | None = None, calibration: str | None = None,
                 calibration_editor: str | None = None, group: str | None = None, max_iters: int = 3,
                 tolerance: float = 0.1, leakage: float = 0.15, lock: Sequence[str] = ()) -> None:
        if not isinstance(inner, Editor):
            raise SettingError(f"closed_loop: the inner editor must be an editor config; to choose one write "
                               f"editor@editor.inner={inner} (Hydra's group syntax), got {inner!r}")
        require(max_iters >= 1 and tolerance > 0 and leakage > 0,
                f"closed_loop: max_iters must be >= 1 and tolerance, leakage > 0, got {max_iters}, {tolerance}, "
                f"{leakage}")
        super().__init__()
        self.inner = inner
        if lock:
            inner.set_lock(lock)
        self.needs_bg = inner.needs_bg
        self.measurer = measurer or EditMeasurer(identity=None)
        self.max_iters, self.tolerance, self.leakage = max_iters, tolerance, leakage
        editor = calibration_editor or inner.name
        self.gain = (Calibration.load(calibration).gain(editor, group) if calibration is not None
                     else np.eye(len(EDITABLE)))

    def render(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[np.ndarray]:
        return [e.image for e in self.run(face, edits, bg)]

    def run(self, face: AlignedFace, edits: Sequence[AUEdit], bg: np.ndarray | None = None) -> list[Edited]:
        self.check(edits)
        loops = [self._start(edit) for edit in edits]
        images: list[np.ndarray | None] = [None] * len(edits)
        for _ in range(self.max_iters):
            pending = [k for k, loop in enumerate(loops) if not loop.done]
            if not pending:
                break
            requests = [_as_edit(loops[k].request) for k in pending]
            outputs = self.inner.run(face, requests, bg)
            measured = self.measurer.measure(face.image, [loops[k].target for k in pending],
                                             [o.image for o in outputs])
            for k, out, row in zip(pending, outputs, measured, strict=True):
                if self._step(loops[k], out, row):
                    images[k] = out.image
        return [Edited(image if image is not None else face.image.copy(),
                       {"loop": loop.iterations, "chosen": loop.best[1] if loop.best else None})
                for image, loop in zip(images, loops, strict=True)]

    def _start(self, edit: AUEdit) -> Loop:
        loop = Loop(edit, self.gain.copy(), np.zeros(len(EDITABLE)))
        if not edit.values:  # the zero edit: one pass through the inner editor, nothing to steer
            return loop
        naive = loop.jacobian @ loop.wanted  # what asking for the target itself would give, by the calibration
        request = _solve(loop.jacobian, loop.wanted, self._rows(loop), self._steered(loop, naive))
        loop.request = np.clip(request, -MAX_INTENSITY, MAX_INTENSITY)  # a weak gain can ask for more than exists
        return loop

    def _rows(self, loop: Loop) -> np.ndarray:
        """Row weights of the target, each error in units of what the stopping rule allows: a requested AU's
        error against ``tolerance`` x its target, an independent AU's leak against its share of the allowed
        mean leakage; coupled AUs 0 (free)."""
        scale = max(abs(v) for v in loop.target.values.values()) if loop.target.values else 1.0
        weights = np.zeros(len(EDITABLE))
        independent = loop.independent
        for au in independent:
            weights[INDEX[au]] = 1.0 / (self.leakage * scale * np.sqrt(len(independent)))
        for au, value in loop.target.values.items():
            weights[INDEX[au]] = 1.0 / (self.tolerance * abs(value))
        return weights

    def _steered(self, loop: Loop, change: np.ndarray) -> list[int]:
        """Requested AUs, every AU steered before, and the independent AUs whose (measured or predicted)
        leak is past half the tolerance."""
        limit = 0.5 * self.leakage * max(abs(v) for v in loop.target.values.values())
        leaking = {INDEX[au] for au in loop.independent if abs(change[INDEX[au]]) > limit}
        loop.steered |= {INDEX[au] for au in loop.asked} | leaking
        return sorted(loop.steered)

    def _score(self, loop: Loop, measured: np.ndarray) -> tuple[float, float, float]:
        """(worst relative error on the requested AUs, leakage per unit, combined score; <= 1 is within tolerance)."""
        if not loop.target.values:
            return 0.0, 0.0, 0.0
        scale = max(abs(v) for v in loop.target.values.values())
        error = max(abs(measured[INDEX[au]] - v) / abs(v) for au, v in loop.target.values.items())
        independent = [INDEX[au] for au in loop.independent]
        leak = float(np.mean(np.abs(measured[independent]))) / scale if independent else 0.0
        return error, leak, max(error / self.tolerance, leak / self.leakage)

    def _step(self, loop: Loop, out: Edited, row: Mapping) -> bool:
        """Record one iteration and plan the next; True when this output is the best so far."""
        if row.get("status") != "ok":
            loop.iterations.append({"request": _as_dict(loop.request), "status": row.get("status"),
                                    "reason": row.get("reason", "")})
            loop.done = loop.best is not None or len(loop.iterations) >= self.max_iters
            return loop.best is None
        measured = np.array([row[f"d_{au}"] for au in EDITABLE])
        error, leak, score = self._score(loop, measured)
        loop.iterations.append({"request": _as_dict(loop.request), "measured": _as_dict(measured),
                                "error": round(error, 4), "leakage": round(leak, 4),
                                **({"inner": out.details} if out.details else {})})
        better = loop.best is None or score < loop.best[0]
        if better:
            loop.best = (score, len(loop.iterations) - 1)
        if score <= 1.0 or not loop.target.values or len(loop.iterations) >= self.max_iters:
            loop.done = True
            return better
        last_request, last_measured = loop.last
        step, response = loop.request - last_request, measured - last_measured
        if len(loop.iterations) == 1:  # first the face's overall responsiveness: half strength halves every AU
            predicted, observed = self._rows(loop) * (loop.jacobian @ step), self._rows(loop) * response
            strength = predicted @ observed / max(predicted @ predicted, 1e-12)
            loop.jacobian *= float(np.clip(strength, 0.1, 10.0))
        if step @ step > 1e-12:
            loop.jacobian += np.outer(response - loop.jacobian @ step, step) / (step @ step)
        loop.last = (loop.request.copy(), measured)
        delta = _solve(loop.jacobian, loop.wanted - measured, self._rows(loop), self._steered(loop, measured))
        loop.request = np.clip(loop.request + delta, -MAX_INTENSITY, MAX_INTENSITY)
        return better


def _solve(jacobian: np.ndarray, residual: np.ndarray, weights: np.ndarray, steered: Sequence[int],
           ridge: float = 1e-6) -> np.ndarray:
    """The request change dr (zero off ``steered``) minimising ``||W (J dr - residual)||^2 + ridge ||dr||^2``,
    the ridge relative to the system's scale (it only keeps AUs with no measurable effect at 0)."""
    columns = list(steered)
    a = weights[:, None] * jacobian[:, columns]
    b = weights * residual
    normal = a.T @ a
    solution = np.linalg.solve(normal + ridge * np.trace(normal) / len(columns) * np.eye(len(columns)), a.T @ b)
    delta = np.zeros(len(EDITABLE))
    delta[columns] = solution
    return delta


def _as_dict(vector: np.ndarray) -> dict[str, float]:
    return {au: round(float(v), 4) for au, v in zip(EDITABLE, vector, strict=True) if abs(v) > 5e-5}


def _as_edit(vector: np.ndarray) -> AUEdit:
    """The request as an edit (values beyond the safe range are expected here: no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AUEdit(_as_dict(vector))

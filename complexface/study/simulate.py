"""Simulated raters: new raters who take the study through its real HTTP interface, answering with planted
recognition rates (for demos, tests and the benchmark).

A simulated rater opens its link, consents, reads the instructions and answers each trial from the page's own
form (anti-forgery field included), fetching the image first. For a trial of recipe R it picks the intended
emotion with probability ``displayed[R]`` (``felt[R]`` for the felt question) and otherwise a uniformly random
other option; a target naming several emotions (``joy+surprise``) is hit by any of them, and a target that is
not an option cannot be hit. Attention checks are passed with probability ``attention``. Rates are looked up as
``"<recipe>@<intensity>"``, then ``"<recipe>"`` (``source`` for the unedited faces), then ``default``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from complexface.settings import require
from complexface.study.design import CONFIDENCE, GENUINENESS, Design
from complexface.study.folder import StudyFolder
from complexface.study.store import Store
from complexface.study.tokens import Link, add_raters

FIELD = re.compile(r"<input type='hidden' name='(\w+)' value='([^']*)'>")
STATE = re.compile(r"<main data-state='(\w+)'>")
CODE = re.compile(r"id='completion-code'>([^<]+)<")


def target_set(target: str) -> set[str]:
    """``"joy+surprise"`` -> {joy, surprise} (the analysis reads blends the same way)."""
    return {t.strip() for t in str(target).split("+") if t.strip()}


class SimulationError(RuntimeError):
    """A simulated rater met a page or status the study should not give."""


class SimulatedRaters:
    """``simulate`` node of ``conf/study.yaml``."""

    def __init__(self, seed: int = 0, concurrency: int = 50, displayed: Mapping[str, float] | None = None,
                 felt: Mapping[str, float] | None = None, attention: float = 0.95, groups: Sequence[str] = (),
                 double_submit: float = 0.0, think_ms: Sequence[float] = (0, 0), language: str | None = None,
                 timeout_s: float = 60.0) -> None:
        self.displayed = {"default": 0.7, **dict(displayed or {})}
        self.felt = {"default": 0.5, **dict(felt or {})}
        for name, rates in (("displayed", self.displayed), ("felt", self.felt)):
            bad = {k: v for k, v in rates.items() if not 0 <= float(v) <= 1}
            require(not bad, f"simulate.{name}: recognition rates are probabilities 0..1, got {bad}")
        require(0 <= attention <= 1 and 0 <= double_submit <= 1,
                "simulate.attention and simulate.double_submit are probabilities 0..1")
        require(concurrency >= 1, f"simulate.concurrency must be >= 1, got {concurrency}")
        require(len(think_ms) == 2 and 0 <= think_ms[0] <= think_ms[1],
                f"simulate.think_ms is [low, high] milliseconds, got {list(think_ms)}")
        self.seed, self.concurrency, self.attention = seed, concurrency, attention
        self.groups, self.double_submit = list(groups), double_submit
        self.think_ms, self.language, self.timeout_s = (float(think_ms[0]), float(think_ms[1])), language, timeout_s

    def rate(self, rates: Mapping[str, float], recipe: str, intensity: float) -> float:
        for key in (f"{recipe}@{intensity:g}", recipe, "default"):
            if key in rates:
                return float(rates[key])
        return 0.0

    def planted(self, design: Design) -> dict[str, dict[str, float]]:
        """The rate each scored condition was simulated with, by recipe (for checking an analysis)."""
        out: dict[str, dict[str, float]] = {}
        for stim in design.stimuli.values():
            if stim["use"] == "trial":
                recipe, intensity = stim["recipe"], stim["intensity"]
                out.setdefault(recipe, {"displayed": self.rate(self.displayed, recipe, intensity),
                                        "felt": self.rate(self.felt, recipe, intensity)})
        return out

    @staticmethod
    def _choose(rng: random.Random, options: Sequence[str], target: str, p: float) -> str:
        hits = sorted(target_set(target) & set(options))
        if hits and rng.random() < p:
            return rng.choice(hits)
        return rng.choice([o for o in options if o not in hits])

    def answer(self, design: Design, trial: Mapping, rng: random.Random) -> dict[str, str]:
        """The form values a simulated rater gives on ``trial``."""
        if trial["kind"] == "attention":
            wanted = trial["expected"]
            given = wanted if rng.random() < self.attention else rng.choice([o for o in design.options if o != wanted])
            return {design.attention_question: given}
        stim = design.stimuli[trial["stimulus"]]
        values: dict[str, str] = {}
        asked = design.asked(trial["kind"])
        for question, rates in (("displayed", self.displayed), ("felt", self.felt)):
            if question in asked:
                target = stim[f"{question}_target"]
                values[question] = self._choose(rng, design.options, target,
                                                self.rate(rates, stim["recipe"], stim["intensity"]))
        if "genuineness" in asked:
            values["genuineness"] = str(rng.randint(*GENUINENESS))
        if "confidence" in asked:
            values["confidence"] = str(rng.randint(*CONFIDENCE))
        if "free_text" in asked:
            values["free_text"] = rng.choice(["", "", "", "looks a bit odd", "=HYPERLINK(\"x\")", "目が笑っていない"])
        return values

    def add(self, study_dir: str | Path, raters: int) -> list[Link]:
        """New simulated raters (groups assigned in turn), each with a private token. Their ids follow from the
        seed and the number of raters already there, so a simulation is reproducible: the same raters see the
        same orders and give the same answers."""
        folder = StudyFolder(study_dir).require()
        start = len(Store(folder).raters())
        ids = ["r" + hashlib.sha256(f"simulated:{self.seed}:{start + k}".encode()).hexdigest()[:12]
               for k in range(raters)]
        groups = self.groups or [""]
        links = []
        for i, group in enumerate(groups):
            mine = ids[i::len(groups)]
            if mine:
                links += add_raters(folder, len(mine), group, self.language, "simulated", mine)
        return links

    def run(self, study_dir: str | Path, raters: int, base_url: str | None = None, settings=None) -> dict:
        """Add ``raters`` simulated raters and let them take the study (on a server started here on 127.0.0.1
        unless ``base_url`` names a running one); returns counts, timings and what each rater sent."""
        from complexface.study.server import ServerSettings, running_server

        require(raters >= 1, f"raters must be >= 1, got {raters}")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry the raters' tokens
        folder = StudyFolder(study_dir).require()
        design = Design.load(folder)
        links = self.add(folder.path, raters)
        if base_url:
            return asyncio.run(self.take(base_url, links, design, folder))
        with running_server(folder.path, settings or ServerSettings(port=0)) as url:
            return asyncio.run(self.take(url, links, design, folder))

    async def take(self, base_url: str, links: Sequence[Link], design: Design, folder: StudyFolder) -> dict:
        """Every link's rater takes the study, ``concurrency`` at a time."""
        import httpx

        seqs = {r["id"]: json.loads(r["seq"]) for r in Store(folder).raters()}
        gate = asyncio.Semaphore(self.concurrency)
        stats = {"requests": 0, "answers": 0, "replays": 0, "latencies_ms": [], "errors": [], "codes": {},
                 "sent": {}}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        start = time.perf_counter()
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=self.timeout_s) as client:
            async def one(index: int, link: Link) -> None:
                async with gate:
                    try:
                        await self._rater(client, link, seqs[link.rater], design,
                                          random.Random(f"{self.seed}:{index}"), stats)
                    except Exception as err:  # noqa: BLE001 - reported, the other raters go on
                        stats["errors"].append(f"{link.rater}: {type(err).__name__}: {err}")

            await asyncio.gather(*(one(i, link) for i, link in enumerate(links)))
        seconds = time.perf_counter() - start
        return {"raters": len(links), "completed": len(stats["codes"]), "seconds": round(seconds, 3),
                **stats, "planted": self.planted(design)}

    async def _rater(self, client, link: Link, seq: Sequence[dict], design: Design, rng: random.Random,
                     stats: dict) -> None:
        url = f"/r/{link.token}"

        async def get(path: str):
            stats["requests"] += 1
            response = await client.get(path)
            if response.status_code != 200:
                raise SimulationError(f"GET {path.replace(link.token, '<token>')}: {response.status_code}")
            return response

        async def post(path: str, form: Mapping[str, object]):
            stats["requests"] += 1
            began = time.perf_counter()
            response = await client.post(path, data={k: str(v) for k, v in form.items()})
            return response, (time.perf_counter() - began) * 1000

        def fields(page: str) -> dict[str, str]:
            return dict(FIELD.findall(page))

        def state(page: str) -> str:
            found = STATE.search(page)
            return found.group(1) if found else ""

        async def think() -> None:
            if self.think_ms[1]:
                await asyncio.sleep(rng.uniform(*self.think_ms) / 1000)

        if self.think_ms[1]:  # raters arrive spread over one pause, not all in the same instant
            await asyncio.sleep(rng.uniform(0, self.think_ms[1]) / 1000)
        page = (await get(url)).text
        if state(page) != "consent":
            raise SimulationError(f"expected the consent page, got {state(page)!r}")
        await think()
        response, _ = await post(f"{url}/consent", {"csrf": fields(page)["csrf"], "agree": "yes", "choice": "agree"})
        page = (await get(url)).text
        await think()
        response, _ = await post(f"{url}/start", {"csrf": fields(page)["csrf"]})
        page = (await get(url)).text
        while state(page) in ("practice", "trial"):
            form = fields(page)
            position = int(form["trial"])
            image = await get(f"{url}/img/{position}")
            if image.headers.get("content-type") != "image/jpeg":
                raise SimulationError("the trial image is not a JPEG")
            await think()
            values = self.answer(design, seq[position], rng)
            rt = round(rng.lognormvariate(math.log(2500), 0.4), 1)
            data = {"trial": position, "csrf": form["csrf"], "rt_ms": rt, **values}
            response, latency = await post(f"{url}/answer", data)
            if response.status_code != 303:
                raise SimulationError(f"answer {position}: status {response.status_code}")
            stats["latencies_ms"].append(latency)
            stats["answers"] += 1
            stats["sent"][link.rater, position] = {**values, "rt_ms": rt}
            if rng.random() < self.double_submit:  # a double click, or a replay with other values
                replay = {**data, **self.answer(design, seq[position], rng)}
                again, _ = await post(f"{url}/answer", replay)
                stats["replays"] += 1
                if again.status_code != 303:
                    raise SimulationError(f"replayed answer {position}: status {again.status_code}")
            page = (await get(url)).text
        if state(page) != "done":
            raise SimulationError(f"expected the completion page, got {state(page)!r}")
        stats["codes"][link.rater] = CODE.search(page).group(1)

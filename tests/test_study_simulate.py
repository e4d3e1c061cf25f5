"""Simulated raters through the real HTTP interface: 50 at once lose and duplicate no answer, planted rates come
back out of the export (and out of the analysis), and a server killed with SIGKILL mid-study loses no stored
answer; the command line (links, serve) as a user runs it."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

import httpx
import pytest

import study
from complexface.study.design import Design
from complexface.study.folder import StudyFolder
from complexface.study.simulate import SimulatedRaters
from complexface.study.store import Store
from complexface.study.tokens import Keys, add_raters
from complexface.web import wait_until_serving
from tests.conftest import ROOT
from tests.study_helpers import fields, make_study, state, study_config

PLANTED_DISPLAYED = {"happiness_prototype": 0.9, "anger_masking_smile": 0.3, "surprise_prototype": 0.6, "source": 0.8}
PLANTED_FELT = {"happiness_prototype": 0.8, "anger_masking_smile": 0.2, "surprise_prototype": 0.5, "source": 0.5}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fifty_concurrent_raters_lose_no_answer_and_duplicate_none(study_run_dir, tmp_path):
    folder = StudyFolder(tmp_path / "study")
    make_study(study_run_dir, folder.path)
    raters = SimulatedRaters(seed=1, concurrency=50, double_submit=0.3, groups=["a", "b"])
    result = raters.run(folder.path, 50)
    assert result["errors"] == [] and result["completed"] == 50 and result["replays"] > 50
    stored = Store(folder).answers()
    by_rater = defaultdict(list)
    for answer in stored:
        by_rater[answer["rater"]].append(answer)
    n_trials = {r["id"]: r["n_trials"] for r in Store(folder).raters()}
    assert len(stored) == sum(n_trials.values()) == result["answers"]
    for rater, answers in by_rater.items():
        assert [a["trial"] for a in answers] == list(range(n_trials[rater]))  # each trial once, none skipped
        for a in answers:  # the first submission stands; replays with other values changed nothing
            sent = result["sent"][rater, a["trial"]]
            assert all(str(a[k]) == str(v) for k, v in sent.items() if k != "rt_ms") and a["rt_ms"] == sent["rt_ms"]
    keys = Keys(folder.secret())
    assert result["codes"] == {r: keys.completion_code(r) for r in by_rater}
    assert len(set(result["codes"].values())) == 50
    counts = defaultdict(int)
    for r in Store(folder).raters():
        counts[r["list"]] += 1
    assert max(counts.values()) - min(counts.values()) <= 1  # lists stay balanced


def test_a_simulation_is_reproducible(study_run_dir, tmp_path):
    exports = []
    for name in ("a", "b"):
        folder = StudyFolder(tmp_path / name)
        make_study(study_run_dir, folder.path)
        assert SimulatedRaters(seed=7, concurrency=4, groups=["x", "y"]).run(folder.path, 6)["errors"] == []
        study.run(study_config(folder.path, action="export"))
        with open(folder.export / "answers.csv", newline="", encoding="utf-8") as handle:
            exports.append([{k: v for k, v in row.items() if k != "answered_at"} for row in csv.DictReader(handle)])
    assert exports[0] == exports[1] and len(exports[0]) == 6 * 9


def wilson(hits: int, n: int, z: float = 3.29) -> tuple[float, float]:
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.fixture(scope="module")
def simulated(study_run_dir, tmp_path_factory) -> tuple[StudyFolder, dict]:
    folder = StudyFolder(tmp_path_factory.mktemp("simulated") / "study")
    make_study(study_run_dir, folder.path)
    cfg = study_config(folder.path, "raters=80", "simulate.concurrency=20",
                       *(f"+simulate.displayed.{k}={v}" for k, v in PLANTED_DISPLAYED.items()),
                       *(f"+simulate.felt.{k}={v}" for k, v in PLANTED_FELT.items()), action="simulate")
    result = study.run(cfg)
    assert result["completed"] == 80
    study.run(study_config(folder.path, action="export"))
    return folder, result


def test_planted_rates_come_back_out_of_the_export(simulated):
    folder, result = simulated
    assert result["planted"]["anger_masking_smile"] == {"displayed": 0.3, "felt": 0.2}
    with open(folder.export / "answers.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    design = json.loads(folder.design.read_text())
    assert list(rows[0]) == ["rater", "rater_group", "list", "trial", "kind", "stimulus", "recipe", "felt_target",
                             "displayed_target", "intensity", "face", "face_group", "displayed_answer",
                             "felt_answer", "genuineness", "confidence", "free_text", "rt_ms", "answered_at",
                             "attention_expected", "attention_passed"]
    assert design["options"][-1] == "other" and design["chance"] == pytest.approx(1 / len(design["options"]))
    assert len(rows) == 80 * 9 and {r["kind"] for r in rows} == {"practice", "trial", "baseline", "attention"}
    scored = [r for r in rows if r["kind"] in ("trial", "baseline")]
    for question, planted in (("displayed", PLANTED_DISPLAYED), ("felt", PLANTED_FELT)):
        for recipe, rate in planted.items():
            cell = [r for r in scored if r["recipe"] == recipe]
            hits = sum(r[f"{question}_answer"] == r[f"{question}_target"] for r in cell)
            low, high = wilson(hits, len(cell))
            assert len(cell) >= 80 and low <= rate <= high, (question, recipe, hits, len(cell))
    checks = [r for r in rows if r["kind"] == "attention"]
    assert {r["attention_passed"] for r in checks} == {"true", "false"} or all(
        r["attention_passed"] == "true" for r in checks)
    passed = sum(r["attention_passed"] == "true" for r in checks) / len(checks)
    assert 0.88 <= passed <= 1 and all(r["attention_expected"] for r in checks)
    assert all(r["attention_expected"] == "" and r["attention_passed"] == "" for r in rows if r["kind"] != "attention")
    baseline = [r for r in rows if r["kind"] == "baseline"]
    assert {(r["recipe"], r["displayed_target"], r["felt_target"], r["intensity"]) for r in baseline} == {
        ("source", "neutral", "neutral", "0.0")}
    with open(folder.export / "raters.csv", newline="", encoding="utf-8") as handle:
        raters = list(csv.DictReader(handle))
    assert len(raters) == 80 and all(r["completion_code"] and r["n_answers"] == "9" for r in raters)


def test_analysis_recovers_the_planted_rates(simulated):
    pytest.importorskip("complexface.study.analysis")
    folder, _ = simulated
    summary = study.run(study_config(folder.path, "study.analysis.wandb=false", action="analyze"))
    assert isinstance(summary, dict) and (folder.path / "analysis" / "report.html").exists()
    with open(folder.path / "analysis" / "recognition.csv", newline="", encoding="utf-8") as handle:
        table = [r for r in csv.DictReader(handle) if r["level"] == "recipe"]
    for question, planted in (("displayed", PLANTED_DISPLAYED), ("felt", PLANTED_FELT)):
        for recipe, rate in planted.items():
            row = next(r for r in table if r["question"] == question and r["recipe"] == recipe)
            assert abs(float(row["rate"]) - rate) < 0.12, (question, recipe, row["rate"])


def _serve(folder: StudyFolder, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(ROOT / "study.py"), "action=serve", f"study.dir={folder.path}",
                                f"server.port={port}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_until_serving(f"http://127.0.0.1:{port}/robots.txt", process)
    return process


def test_a_server_killed_mid_study_loses_no_stored_answer_and_raters_resume(study_run_dir, tmp_path):
    folder = StudyFolder(tmp_path / "study")
    make_study(study_run_dir, folder.path)
    design = Design.load(folder)
    links = add_raters(folder, 6)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    acknowledged: dict[tuple[str, int], str] = {}
    lock, stop = threading.Lock(), threading.Event()

    def rater(link) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            url = f"/r/{link.token}"
            try:
                page = client.get(url).text
                client.post(f"{url}/consent", data={"csrf": fields(page)["csrf"], "agree": "yes", "choice": "agree"})
                page = client.get(url).text
                client.post(f"{url}/start", data={"csrf": fields(page)["csrf"]})
                while not stop.is_set():
                    page = client.get(url).text
                    if state(page) not in ("practice", "trial"):
                        return
                    form = fields(page)
                    position = int(form["trial"])
                    entry = json.loads(next(r["seq"] for r in Store(folder).raters() if r["id"] == link.rater))[position]
                    answer = entry.get("expected", "joy")
                    data = {"trial": form["trial"], "csrf": form["csrf"], **(
                        {design.attention_question: answer} if entry["kind"] == "attention" else
                        {"displayed": answer, "felt": "fear", "genuineness": str(position % 7), "confidence": "3"})}
                    if client.post(f"{url}/answer", data=data).status_code == 303:
                        with lock:
                            acknowledged[link.rater, position] = data.get("displayed")
                    time.sleep(0.02)
            except httpx.HTTPError:
                return  # the server is gone

    server = _serve(folder, port)
    threads = [threading.Thread(target=rater, args=(link,)) for link in links]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)  # mid-study: raters are still posting
        server.wait(10)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        if server.poll() is None:
            server.kill()
    assert len(acknowledged) >= 20
    stored = {(a["rater"], a["trial"]): a for a in Store(folder).answers()}
    assert set(acknowledged) <= set(stored)  # every acknowledged answer survived the kill
    assert all(stored[key]["displayed"] == value for key, value in acknowledged.items())
    unfinished = [r for r in Store(folder).raters() if r["n_answers"] < r["n_trials"]]
    assert unfinished
    server = _serve(folder, port)
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            for link in links:
                row = next(r for r in Store(folder).raters() if r["id"] == link.rater)
                page = client.get(f"/r/{link.token}").text
                if row["n_answers"] < row["n_trials"]:  # resumes at the next unanswered trial
                    assert f"data-trial='{row['n_answers']}'" in page
                else:
                    assert state(page) == "done"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
    assert {(a["rater"], a["trial"]) for a in Store(folder).answers()} == set(stored)


def test_the_command_line_makes_links_and_reports_mistakes(study_run_dir, tmp_path):
    folder = tmp_path / "study"
    make_study(study_run_dir, folder)
    out = subprocess.run([sys.executable, str(ROOT / "study.py"), "action=links", f"study.dir={folder}", "n=3",
                          "group=pilot", "server.public_url=https://study.example.org"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    urls = [line for line in out.stdout.splitlines() if line.startswith("https://study.example.org/r/")]
    assert len(urls) == 3 and "prolific entry link (study URL): https://study.example.org/p/" in out.stdout
    written = next((folder / "links").glob("links-*.csv"))
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    with open(written, newline="", encoding="utf-8") as handle:
        assert [row["url"] for row in csv.DictReader(handle)] == urls
    assert not (ROOT / "outputs" / "study").exists() and not list(folder.glob(".hydra"))
    bad = subprocess.run([sys.executable, str(ROOT / "study.py"), "action=links", f"study.dir={tmp_path / 'none'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no study in") and "Traceback" not in bad.stderr

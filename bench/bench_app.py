"""The AU editor app (`app.py`): slider -> new preview pixels in a real browser, the /api/edit latency, and 20
concurrent sessions (target: <= 50 ms median slider-to-pixels at 512 px with the warp editor).

    PYTHONPATH=. python bench/bench_app.py [--moves 60] [--requests 200] [--sessions 20] [--edits 30]

The real entry script serves on loopback (`python app.py server.port=<free port>`, one uvicorn process). Then:
- browser: Debian's Chromium (Playwright) opens the page on bundled face 001.jpg; each move sets the AU12 slider to
  a new value and fires its input event, and the page's own clock (performance.now()) runs until the preview
  image's load event (request, edit, PNG, decode). Moves are sequential (each waits for its pixels), after 5 warm-up;
- api: --requests sequential POST /api/edit calls with random slider states (the face's precompute warm);
- sessions: --sessions concurrent sessions (each its own cookie and bundled face, its precompute made first), then
  --edits edits each at once, no pause; bounded by --seconds. Reports p50/p99 and edits/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from complexface.web import wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
MOVE = """value => new Promise(done => {
  const img = document.querySelector('#after'), slider = document.querySelector('input[name=AU12]');
  const start = performance.now();
  img.addEventListener('load', () => done(performance.now() - start), {once: true});
  slider.value = String(value);
  slider.dispatchEvent(new Event('input', {bubbles: true}));
})"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "app.py", f"server.port={port}", "editor.cache_faces=32"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    wait_until_serving(f"http://127.0.0.1:{port}/api/info", proc, timeout=120)
    return proc


def summary(name: str, times: list[float]) -> dict:
    values = np.array(times)
    row = {"what": name, "n": len(values), "median_ms": round(float(np.median(values)), 1),
           "p90_ms": round(float(np.percentile(values, 90)), 1), "p99_ms": round(float(np.percentile(values, 99)), 1)}
    print(row, flush=True)
    return row


def browser(url: str, moves: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        b = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = b.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{url}/?lang=en&face=001.jpg")
        page.wait_for_selector("main[data-state=ready]")
        page.wait_for_function("() => document.querySelector('#after').getAttribute('data-edit') === 'neutral'")
        values = [v / 2 for v in range(-10, 11) if v]
        times = []
        for i in range(moves + 5):
            took = page.evaluate(MOVE, values[i % len(values)])
            if i >= 5:
                times.append(took)
        b.close()
    return times


def api(url: str, requests: int) -> list[float]:
    rng = random.Random(0)
    with httpx.Client(base_url=url, timeout=30) as client:
        face = client.post("/api/faces", json={"demo": "001.jpg"}).json()["faces"][0]["id"]
        client.post("/api/edit", json={"face": face, "aus": {"AU12": 1}})
        times = []
        for _ in range(requests):
            picked = rng.sample(["AU4", "AU6", "AU12", "AU26", "AU1"], 2)
            aus = {k: rng.choice([-3, -1.5, 0, 1, 2.5, 4]) for k in picked}
            start = time.perf_counter()
            response = client.post("/api/edit", json={"face": face, "aus": aus})
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
    return times


async def sessions(url: str, n: int, edits: int, seconds: float) -> tuple[list[float], float]:
    faces = sorted(p.name for p in (ROOT / "complexface" / "assets" / "demo_faces").glob("*.jpg"))
    times: list[float] = []
    deadline = time.monotonic() + seconds
    ready, go = [0], asyncio.Event()

    async def one(k: int) -> None:
        rng = random.Random(k)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            face = (await client.post("/api/faces", json={"demo": faces[k % len(faces)]})).json()["faces"][0]["id"]
            await client.post("/api/edit", json={"face": face, "aus": {}})  # the face's precompute
            ready[0] += 1
            if ready[0] == n:
                go.set()
            await go.wait()  # timed edits start when every session has its face: steady state, not arrival
            for _ in range(edits):
                if time.monotonic() > deadline:
                    return
                aus = {"AU12": rng.choice([1, 2, 3, 4]), "AU4": rng.choice([0, 1, 2])}
                start = time.perf_counter()
                response = await client.post("/api/edit", json={"face": face, "aus": aus})
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200

    tasks = [asyncio.create_task(one(k)) for k in range(n)]
    await go.wait()
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    return times, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=60)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    port = free_port()
    proc = start_app(port)
    url = f"http://127.0.0.1:{port}"
    try:
        summary("browser: slider -> preview pixels (AU12, 512 px, warp)", browser(url, args.moves))
        summary("api: POST /api/edit, sequential", api(url, args.requests))
        times, took = asyncio.run(sessions(url, args.sessions, args.edits, args.seconds))
        row = summary(f"{args.sessions} concurrent sessions: POST /api/edit", times)
        print({"edits_per_s": round(len(times) / took, 1), "seconds": round(took, 1), **row}, flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


if __name__ == "__main__":
    main()

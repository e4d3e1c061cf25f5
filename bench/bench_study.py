"""Study server under load: requests/s and p50/p99 latency of the answer endpoint with 100 concurrent simulated
raters on loopback (target: p99 < 100 ms on the 2-core machine).

    PYTHONPATH=. python bench/bench_study.py [--raters 100] [--think-ms 2000 4000] [--seconds 180]

A synthetic study (16 faces x 4 recipes + the source, 5 Latin-square lists; 2 practice trials and 2 attention
checks, 19 trials a rater) is served by the real entry script (`study.py action=serve`, one uvicorn process,
SQLite WAL with synchronous=FULL: every acknowledged answer is on disk) and the simulated raters of
`complexface.study.simulate` take it over HTTP in this process: each opens its page, fetches the image, posts
its answer (timed: the answer endpoint, POST -> 303) and follows the redirect, as a browser does.

Two loads, both with --raters raters at once and bounded by the raters' trials and --seconds:
- paced: raters arrive over the first pause and wait --think-ms (uniform) before each answer (people take 5-10 s
  a trial with four questions; this is 2-3x faster), so the latency is the server's own;
- flood: no pause at all, every rater posts again as soon as its page is back: the server's capacity (there the
  latency is queueing: concurrency / throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from complexface.study.design import Design, StudySpec, build
from complexface.study.folder import StudyFolder
from complexface.study.simulate import SimulatedRaters
from complexface.study.sources import SOURCE, Candidate
from complexface.study.store import Store
from complexface.web import wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {"happiness_prototype": ("joy", "joy"), "anger_masking_smile": ("anger", "joy"),
           "surprise_prototype": ("surprise", "surprise"), "polite_smile": ("neutral", "joy")}


def synthetic_study(root: Path, faces: int = 16) -> StudyFolder:
    """A study over noise images (the server never decodes them; their size matches a real 512 crop's JPEG)."""
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir(parents=True)
    candidates = []
    for f in range(faces):
        for recipe, (felt, displayed) in [*RECIPES.items(), (SOURCE, ("neutral", "neutral"))]:
            path = images / f"{f:03d}_{recipe}.png"
            base = rng.integers(90, 170, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(base).resize((512, 512), Image.BICUBIC).save(path)
            intensity = 0.0 if recipe == SOURCE else 1.0
            candidates.append(Candidate(f"{f:03d}", ("a", "b", "c", "d")[f % 4], recipe, intensity, felt, displayed,
                                        path))
    folder = StudyFolder(root / "study")
    spec = StudySpec(dir=str(folder.path))
    build(spec, candidates, folder).save(folder)
    folder.secret()
    Store(folder)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: StudyFolder, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(ROOT / "study.py"), "action=serve", f"study.dir={folder.path}",
                                f"server.port={port}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_until_serving(f"http://127.0.0.1:{port}/robots.txt", process)
    return process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(folder: StudyFolder, base: str, raters: int, think_ms: tuple[float, float], seconds: float, seed: int,
         server_pid: int) -> dict:
    simulated = SimulatedRaters(seed=seed, concurrency=raters, think_ms=think_ms, timeout_s=seconds)
    links = simulated.add(folder.path, raters)
    design = Design.load(folder)
    start, cpu = time.perf_counter(), cpu_seconds(server_pid)
    try:
        result = asyncio.run(asyncio.wait_for(simulated.take(base, links, design, folder), seconds))
    except TimeoutError:
        raise SystemExit(f"the load did not finish within {seconds} s") from None
    wall = time.perf_counter() - start
    server_cpu = cpu_seconds(server_pid) - cpu
    latencies = np.array(result["latencies_ms"])
    return {"raters": raters, "completed": result["completed"], "errors": len(result["errors"]),
            "answers": result["answers"], "requests": result["requests"], "seconds": wall,
            "answers_per_s": result["answers"] / wall, "requests_per_s": result["requests"] / wall,
            "p50": float(np.percentile(latencies, 50)), "p90": float(np.percentile(latencies, 90)),
            "p99": float(np.percentile(latencies, 99)), "max": float(latencies.max()),
            "mean": statistics.fmean(latencies), "server_cpu_ms": server_cpu / result["requests"] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=100)
    parser.add_argument("--think-ms", type=float, nargs=2, default=(2000.0, 4000.0))
    parser.add_argument("--seconds", type=float, default=180.0, help="limit of each load")
    parser.add_argument("--faces", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
        folder = synthetic_study(Path(tmp), args.faces)
        n_trials = len(Design.load(folder).sequence(0, "r0"))
        port = free_port()
        server = start_server(folder, port)
        try:
            base = f"http://127.0.0.1:{port}"
            results = {"paced": load(folder, base, args.raters, tuple(args.think_ms), args.seconds, 1, server.pid),
                       "flood": load(folder, base, args.raters, (0.0, 0.0), args.seconds, 2, server.pid)}
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
        stored = Store(folder).count_answers()
    print(f"{args.raters} concurrent raters x {n_trials} trials, server: study.py action=serve (1 process, "
          f"SQLite WAL synchronous=FULL), clients in one asyncio process, {os.cpu_count()} cores")
    print("| load | answers/s | requests/s | answer p50 ms | p90 | p99 | max | errors | wall s "
          "| server CPU ms/request |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        label = f"paced (think {args.think_ms[0]:g}-{args.think_ms[1]:g} ms)" if name == "paced" else "flood (no think)"
        print(f"| {label} | {r['answers_per_s']:.0f} | {r['requests_per_s']:.0f} | {r['p50']:.1f} | {r['p90']:.1f} | "
              f"{r['p99']:.1f} | {r['max']:.1f} | {r['errors']} | {r['seconds']:.1f} | {r['server_cpu_ms']:.2f} |")
    expected = sum(r["answers"] for r in results.values())
    print(f"answers stored: {stored} of {expected} acknowledged; target p99 < 100 ms (paced): "
          f"{'met' if results['paced']['p99'] < 100 else 'MISSED'}")


if __name__ == "__main__":
    main()

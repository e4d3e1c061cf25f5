"""End-to-end time of the default demo sweep (20 faces x 21 distinct edits, warp editor).

    python bench/bench_demo.py [--repeats 3] [--workers 1 2] [--measure off on demo]

Runs ``edit.py`` (a fresh run dir each time, so nothing is resumed; process start, imports, detection,
editing, writing and grids all included) and prints median wall times. ``--measure``: ``off``, ``on`` (the
default measurement: identity on about 1 edit in 10) or ``demo`` (as ``make demo``: identity on every edit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


MEASURE = {"off": ["measure=off"], "on": ["measure=on"], "demo": ["measure=on", "measure.measurer.identity_every=1"]}


def wall_time(workers: int, measure: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "edit.py"), f"hydra.run.dir={tmp}/run", f"workers={workers}",
                        *MEASURE[measure], "progress=false"], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": tmp, "WANDB_DATA_DIR": tmp})
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--measure", nargs="+", default=list(MEASURE), choices=list(MEASURE))
    args = parser.parse_args()
    print(f"| measure | workers | median wall s (n={args.repeats}) | min | max |")
    print("|---|---|---|---|---|")
    for measure in args.measure:
        for workers in args.workers:
            times = [wall_time(workers, measure) for _ in range(args.repeats)]
            print(f"| {measure} | {workers} | {statistics.median(times):.1f} | {min(times):.1f} | {max(times):.1f} |")


if __name__ == "__main__":
    main()

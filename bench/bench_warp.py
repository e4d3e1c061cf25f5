"""Benchmark the geometric warp editor on the demo faces (a plain script, not a test).

The poster grid: AU4 and AU6+AU12 at -5..5 in steps of 1 (22 edits, two of them the zero edit).
Prints median milliseconds per edit at 512 px with the face's precompute cached, on one thread,
for the 20 non-zero edits (and, apart, the zero edit), and the median per-face precompute, each also as a
ratio to one full-frame 512 x 512 ``cv2.remap`` timed in the same run (a yardstick that holds across machines).

    PYTHONPATH=. python bench/bench_warp.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from complexface.editors.warp import WarpEditor
from complexface.faces import FacePipeline, demo_faceset
from complexface.sweep import EditPlan

POSTER = EditPlan(["AU4=1", "AU6+AU12=1+1"], scales=range(-5, 6))


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the warp editor on the demo faces.")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the edits per face")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    faces = [FacePipeline()(entry.path)[0].aligned for entry in demo_faceset()]
    edits = [edit for row in POSTER.grid for edit in row]
    times: dict[str, list[float]] = {"AU4": [], "AU6+AU12": [], "zero": [], "precompute": [], "remap": []}
    for face in faces:
        editor = WarpEditor(cache_faces=1)
        start = time.perf_counter()
        editor.prepare(face)
        times["precompute"].append(time.perf_counter() - start)
        editor.edit(face, edits)
        for _ in range(args.repeats):
            for edit in edits:
                start = time.perf_counter()
                editor.edit(face, [edit])
                group = "zero" if not edit else "AU4" if "AU4" in edit.values else "AU6+AU12"
                times[group].append(time.perf_counter() - start)
    image = faces[0].image
    grid = np.indices(image.shape[:2], dtype=np.float32)
    for _ in range(3 * len(faces)):
        start = time.perf_counter()
        cv2.remap(image, grid[1], grid[0], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        times["remap"].append(time.perf_counter() - start)
    remap = statistics.median(times["remap"])
    rows = [
        ("per edit, 20 non-zero poster edits", times["AU4"] + times["AU6+AU12"]),
        ("  AU4 at -5..5", times["AU4"]),
        ("  AU6+AU12 at -5..5", times["AU6+AU12"]),
        ("zero edit (identity)", times["zero"]),
        ("per-face precompute", times["precompute"]),
        ("full-frame 512 x 512 cv2.remap (yardstick)", times["remap"]),
    ]
    print(f"warp editor: {len(faces)} demo faces x {len(edits)} poster edits, 512 px, 1 thread, "
          f"{args.repeats} repeats, per-face cache warm")
    print(f"{'measure':<44} {'median ms':>10} {'p90 ms':>8} {'x remap':>8} {'n':>6}")
    for name, values in rows:
        ms = sorted(t * 1000 for t in values)
        median = statistics.median(ms)
        print(f"{name:<44} {median:>10.2f} {ms[int(0.9 * (len(ms) - 1))]:>8.2f} {median / (remap * 1000):>8.2f} "
              f"{len(ms):>6}")


if __name__ == "__main__":
    main()

"""Measurement cost per edit: landmark re-detection, AU/geometry maths, dlib identity embedding.

    python bench/bench_measure.py [--faces 20] [--repeats 5]

Times each part on the aligned 512 crops of the bundled faces (single thread) and prints medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from complexface.au import parse_edit
from complexface.faces import FacePipeline, demo_faceset
from complexface.measure import DlibIdentity, change, shape_change
from complexface.measure.metrics import EditMeasurer


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pipeline = FacePipeline()
    crops = [pipeline(e.path)[0].aligned for e in list(demo_faceset())[: args.faces]]
    measurer = EditMeasurer(identity=DlibIdentity())
    identity = measurer.identity
    lms = [measurer.landmarks(c.image) for c in crops]
    identity.embed(crops[0].image, lms[0])  # load the models outside the timing
    parts = {
        "landmarks (MediaPipe, 512 crop)": lambda c, lm: measurer.landmarks(c.image),
        "AU change + geometry (numpy)": lambda c, lm: (change(lm.points, lm.points), shape_change(lm.points, lm.points)),
        "identity embedding (dlib ResNet)": lambda c, lm: identity.embed(c.image, lm),
        "whole edit (EditMeasurer, per edit)": lambda c, lm: measurer.measure(c.image, [parse_edit("AU12=2")] * 4,
                                                                              [c.image] * 4),
    }
    print(f"| part | median ms over {len(crops)} faces |")
    print("|---|---|")
    for name, fn in parts.items():
        per_face = [median_ms(lambda c=c, lm=lm, fn=fn: fn(c, lm), args.repeats) for c, lm in zip(crops, lms, strict=True)]
        value = float(np.median(per_face)) / (4 if name.startswith("whole") else 1)
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    main()

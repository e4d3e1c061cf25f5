"""Measurement cost per edit: landmark tracking, re-detection, AU/geometry maths, identity embedding, and the
whole EditMeasurer on real warp edits of the bundled faces (one core).

    python bench/bench_measure.py [--faces 20] [--repeats 3]

Each face's poster edits (AU4 and AU6+AU12 at -5..5, 21 per face) are measured in one call, as a sweep does;
per-edit figures are medians over faces of (call time / edits).
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from complexface.editors.warp import WarpEditor
from complexface.faces import FacePipeline, demo_faceset
from complexface.faces.tracking import LandmarkTracker
from complexface.measure import DlibIdentity, change, shape_change
from complexface.measure.metrics import EditMeasurer
from complexface.sweep import EditPlan


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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pipeline, editor = FacePipeline(), WarpEditor()
    edits = EditPlan(["AU4=1", "AU6+AU12=1+1"], scales=range(-5, 6)).edits
    crops = [pipeline(e.path)[0].aligned for e in list(demo_faceset())[: args.faces]]
    outputs = [editor.edit(c, edits) for c in crops]
    identity = DlibIdentity()
    measurers = {every: EditMeasurer(identity=identity, identity_every=every) for every in (1, 10)}
    measurers[None] = EditMeasurer(identity=None)
    probe = measurers[None]
    sources = [probe.landmarks(c.image) for c in crops]
    identity.embed(crops[0].image, sources[0])  # load the models outside the timing
    tracker = LandmarkTracker(detector=probe.detector)
    n = len(edits)
    parts = {
        "landmark tracking (DIS flow + check)": lambda c, s, outs: [tracker.track(c.image, o, s) for o in outs],
        "landmark re-detection (MediaPipe)": lambda c, s, outs: [probe.landmarks(o) for o in outs],
        "AU change + geometry (numpy)": lambda c, s, outs: [(change(s.points, s.points, "AU4=3", sides=True),
                                                             shape_change(s.points, s.points)) for _ in outs],
        "identity embedding (dlib ResNet)": lambda c, s, outs: [identity.embed(o, s) for o in outs],
        **{f"whole EditMeasurer, identity {'off' if every is None else f'identity_every={every}'}":
           (lambda c, s, outs, m=m: m.measure(c.image, edits, outs)) for every, m in measurers.items()},
    }
    sampled = sum(measurers[10].wants_identity(e) for e in edits)
    print(f"identity_every=10 embeds {sampled} of these {n} edits (chosen by label, the same on every face)")
    print(f"| part | median ms per edit ({len(crops)} faces x {n} edits, 1 core) |")
    print("|---|---|")
    for name, fn in parts.items():
        per_face = [median_ms(lambda c=c, s=s, o=o, fn=fn: fn(c, s, o), args.repeats) / n
                    for c, s, o in zip(crops, sources, outputs, strict=True)]
        print(f"| {name} | {float(np.median(per_face)):.1f} |")


if __name__ == "__main__":
    main()

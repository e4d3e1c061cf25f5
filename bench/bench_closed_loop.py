"""Closed-loop AU control on the bundled faces: iterations per edit, seconds per edit and how close each edit
lands, open loop vs closed loop (from the identity, and from a calibration of the same editor).

    python bench/bench_closed_loop.py [--faces 20] [--edits AU4=3 AU6+AU12=3+3 AU1+AU2=2+2 AU15=2]

Editor: the warp editor (one core). The calibration comes from the open-loop pass itself (what
``evaluate.py`` writes as ``calibration.json`` for a sweep of the same edits). Error: the worst relative
error over the requested AUs; leakage: mean |change| of the independent AUs per unit requested.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from complexface.au import parse_edit
from complexface.calibration import Calibration
from complexface.closed_loop import ClosedLoopEditor
from complexface.editors.warp import WarpEditor
from complexface.faces import FacePipeline, demo_faceset
from complexface.measure.metrics import EditMeasurer


def scores(edit, row: dict) -> tuple[float, float]:
    """(worst relative error on the requested AUs, leakage per unit requested)."""
    scale = max(abs(v) for v in edit.values.values())
    error = max(abs(row[f"d_{au}"] - v) / abs(v) for au, v in edit.values.items())
    return error, row["off_target"] / scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=20)
    parser.add_argument("--edits", nargs="+", default=["AU4=3", "AU6+AU12=3+3", "AU1+AU2=2+2", "AU15=2"])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pipeline, measurer = FacePipeline(), EditMeasurer(identity=None)
    entries = list(demo_faceset())[: args.faces]
    crops = [pipeline(e.path)[0].aligned for e in entries]
    edits = [parse_edit(e) for e in args.edits]
    results, rows = [], []
    warp = WarpEditor()
    for entry, crop in zip(entries, crops, strict=True):
        warp.prepare(crop)  # per-face precompute outside the timing, for every variant
        start = time.perf_counter()
        measured = measurer.measure(crop.image, edits, warp.edit(crop, edits))
        seconds = (time.perf_counter() - start) / len(edits)
        for edit, row in zip(edits, measured, strict=True):
            rows.append({"face": entry.face_id, "group": entry.group, "edit": edit.label, "editor": "warp", **row})
            results.append(("open loop", edit.label, 1, seconds, *scores(edit, row)))
    with tempfile.TemporaryDirectory() as tmp:
        calibration = Calibration.from_table(pd.DataFrame(rows)).save(Path(tmp) / "calibration.json")
        loops = {"closed loop, identity start": ClosedLoopEditor(warp, measurer=measurer),
                 "closed loop, calibrated start": ClosedLoopEditor(warp, measurer=measurer,
                                                                   calibration=str(calibration))}
        for name, loop in loops.items():
            for crop in crops:
                start = time.perf_counter()
                done = loop.run(crop, edits)
                seconds = (time.perf_counter() - start) / len(edits)
                final = measurer.measure(crop.image, edits, [d.image for d in done])
                for edit, result, row in zip(edits, done, final, strict=True):
                    results.append((name, edit.label, len(result.details["loop"]), seconds, *scores(edit, row)))
    table = pd.DataFrame(results, columns=["variant", "edit", "edits_made", "s_per_edit", "error", "leakage"])
    summary = table.groupby(["variant", "edit"], sort=False).agg(
        edits_made=("edits_made", "mean"), s_per_edit=("s_per_edit", "median"), error=("error", "median"),
        within_10pct=("error", lambda e: float(np.mean(e <= 0.1))), leakage=("leakage", "median"))
    overall = table.groupby("variant", sort=False).agg(
        edits_made=("edits_made", "mean"), s_per_edit=("s_per_edit", "median"), error=("error", "median"),
        within_10pct=("error", lambda e: float(np.mean(e <= 0.1))), leakage=("leakage", "median"))
    print(f"{len(crops)} faces x {len(edits)} edits, warp editor, 1 core")
    for frame in (summary, overall):
        print(markdown(frame.reset_index()))
        print()


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table (3 decimals)."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


if __name__ == "__main__":
    main()

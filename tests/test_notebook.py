"""notebooks/magicface_colab.ipynb runs top to bottom with nbclient on the CPU, on the tiny MagicFace fixture.

The parameter cell reads ``COMPLEXFACE_NOTEBOOK_TINY=1`` (the fixture instead of downloaded weights, two faces, few
intensities, 4 steps at 128 px) and ``COMPLEXFACE_NOTEBOOK_DIR`` (where its runs go: here ``tmp_path``). The kernel is
the ``python3`` kernel of the running interpreter's environment (ipykernel is pinned in requirements.txt).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "magicface_colab.ipynb"
EXPERIMENT = ["AU4=2", "AU4=4", "AU4=5", "AU6+AU12=5+5"]
RUNS = ("open loop (MagicFace)", "closed loop + nose lock")


def tagged(nb, tag: str) -> list[dict]:
    """The outputs of the one code cell tagged ``tag``."""
    (cell,) = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    return cell.get("outputs", [])


def payloads(outputs: list[dict], mime: str) -> list[str]:
    return [o["data"][mime] for o in outputs if mime in o.get("data", {})]


def test_the_committed_notebook_is_clean_for_colab():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the notebook with outputs cleared"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    (parameters,) = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert "TINY = " in parameters.source and "REPO_URL = " in parameters.source
    text = "\n".join(c.source for c in nb.cells)
    for expected in ("hf download", "mengtingwei/magicface", "stable-diffusion-v1-5/stable-diffusion-v1-5",
                     "editor=magicface", "editor=closed_loop", "editor.lock=[nose]", "perceived-appearance",
                     "colab.research.google.com/github/"):
        assert expected in text


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom_on_the_tiny_fixture(tmp_path, monkeypatch):
    before = NOTEBOOK.read_bytes()
    monkeypatch.setenv("COMPLEXFACE_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("COMPLEXFACE_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for var, sub in (("JUPYTER_RUNTIME_DIR", "jupyter-runtime"), ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "mpl")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
    assert not errors
    # the poster sweep: a face grid for each of the two faces and the group grids, then the report
    assert len(payloads(tagged(nb, "poster-grids"), "image/jpeg")) >= 4
    (report,) = payloads(tagged(nb, "poster-report"), "text/html")
    assert report.startswith("<div><iframe srcdoc=") and "Headline" in report
    # the experiment: per group and edit for both runs, then the comparison table and the crops side by side
    per_group = "\n".join(payloads(tagged(nb, "per-group"), "text/html"))
    comparison = "\n".join(payloads(tagged(nb, "closed-loop"), "text/html"))
    for html in (per_group, comparison):
        for expected in ("east_asian", "western", "nose drift %", "co-activated AUs", *RUNS, *EXPERIMENT):
            assert expected in html, expected
    assert "edits per request" in per_group
    assert len(payloads(tagged(nb, "comparison-images"), "image/png")) == 2

    runs = tmp_path / "runs"
    for name in ("poster", "experiment_open_loop", "experiment_closed_loop_nose_lock"):
        assert (runs / name / "metrics.csv").is_file() and (runs / name / "report.html").is_file()
    records = [json.loads(line) for line in
               (runs / "experiment_closed_loop_nose_lock" / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 2 * len(EXPERIMENT) and all(r["status"] == "ok" for r in records)
    assert all(r["extra"]["editor"] == "closed_loop" and r["extra"]["loop"] for r in records)
    config = (runs / "experiment_closed_loop_nose_lock" / "config.yaml").read_text()
    assert "- nose" in config and "magicface" in config and "calibration.json" in config
    # nothing written into the repository
    assert NOTEBOOK.read_bytes() == before
    assert not (ROOT / "notebooks" / ".ipynb_checkpoints").exists() and not (ROOT / "runs").exists()

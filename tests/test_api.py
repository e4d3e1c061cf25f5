"""The plain Python API (complexface.api, re-exported by complexface): real bundled faces, the warp editor, the
project's measurer and retriever; recipe files an app export writes load into edit.py expression=custom."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import complexface as cf
from complexface.api import FaceIndexError
from complexface.au import AUError
from complexface.faces import demo_faceset
from complexface.sweep import EditPlan
from tests.conftest import ROOT, make_bad_inputs


def test_import_stays_light():
    code = "import sys, complexface; print(any(m.split('.')[0] in ('torch', 'mediapipe', 'cv2') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


@pytest.fixture(scope="module")
def face():
    return cf.load_face(demo_faceset()[0].path)


def test_edit_returns_pil_crops_and_photos(face):
    zero = cf.edit(face, {})
    assert isinstance(zero, Image.Image) and zero.size == (512, 512)
    assert np.array_equal(np.asarray(zero), face.aligned.image)  # the zero edit is the source, exactly
    smile = cf.edit(face, "AU6+AU12=3+3")
    assert smile.info["complexface_edit"] == "AU6+AU12=3+3"
    assert np.abs(np.asarray(smile).astype(int) - face.aligned.image).max() > 30
    photo = cf.edit(face, {"AU12L": 3}, photo=True)
    assert photo.size == (face.photo.shape[1], face.photo.shape[0])
    recipe = cf.edit(face, "anger_masking_smile")  # a catalog recipe id
    assert recipe.info["complexface_edit"] == "AU4+AU12+AU17=2+3+1"
    with pytest.raises(AUError, match="unknown AU"):
        cf.edit(face, "AU3=2")


def test_measure_reads_the_requested_change(face):
    smile = cf.edit(face, "AU12=3")
    m = cf.measure_edit(face, smile)
    assert m["status"] == "ok" and m["requested"] == {"AU12": 3.0} and "AU4" in m["leakage_aus"]
    assert 2.0 < m["measured"]["AU12"] < 4.0
    assert m["leakage"] < 0.5 and m["identity_distance"] < 0.6 and abs(m["nose_drift"]) < 0.03
    assert m["warnings"] == []
    json.dumps(m)  # a plain dict
    strong = cf.measure_edit(face, cf.edit(face, "AU12=6"))
    assert strong["warnings"] and "calibrated range" in strong["warnings"][0]


def test_load_face_picks_a_face_by_size(tmp_path):
    make_bad_inputs(tmp_path)
    first, second = cf.load_face(tmp_path / "two_faces.jpg"), cf.load_face(tmp_path / "two_faces.jpg", index=1)
    assert first.landmarks.width > 1.5 * second.landmarks.width
    with pytest.raises(FaceIndexError, match="2 usable face"):
        cf.load_face(tmp_path / "two_faces.jpg", index=2)


def test_recipe_for_english_and_japanese():
    en = cf.recipe_for("smiling on the surface, angry inside")
    ja = cf.recipe_for("顔は笑っているけど心の中では怒っている")
    for found in (en, ja):
        assert found["id"] == "anger_masking_smile" and found["felt"] == "anger" and found["displayed"] == "joy"
        assert found["aus"] == {"AU4": 2.0, "AU12": 3.0, "AU17": 1.0}
        assert next(t["id"] for t in found["top"]) == "anger_masking_smile" and len(found["top"]) == 3
        assert found["top"][0]["felt"] == "anger" and found["top"][0]["displayed"] == "joy"
        assert all({"id", "felt", "displayed", "score", "confidence"} <= set(t) for t in found["top"])
    assert ja["language"] == "ja" and ja["name_ja"] == "笑顔の裏の怒り"


def test_recipe_file_loads_into_an_edit_plan(tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"format": "complexface-recipe/1", "aus": {"AU12L": 3, "AU4": 1.5}}))
    assert cf.read_recipe_file(path).values == {"AU4": 1.5, "AU12L": 3.0}
    assert EditPlan([str(path)]).base[0].label == "AU4+AU12L=1.5+3"
    with pytest.raises(AUError, match="recipe file not found"):
        EditPlan([str(tmp_path / "missing.json")])


def test_recipe_file_runs_in_edit_py(tmp_path):
    import edit
    from tests.conftest import compose_config

    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"format": "complexface-recipe/1", "aus": {"AU4": 2, "AU12R": 3, "AU17": 1}}))
    cfg = compose_config("edit", ["faceset.only=[001.jpg]", "expression=custom", f"expression.edits=[{path}]",
                                  "measure=off", "logger=none", "workers=1", "progress=false", "grid_thumb=48"])
    summary = edit.edit(cfg, tmp_path / "run")
    assert summary["ok"] == 1 and summary["failed"] == 0
    record = json.loads((tmp_path / "run" / "manifest.jsonl").read_text().splitlines()[0])
    assert record["edit"] == {"AU4": 2.0, "AU12R": 3.0, "AU17": 1.0}

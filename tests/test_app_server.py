"""The AU editor app in process (the real config, real faces): the JSON API the page uses, the zero edit giving the
source crop pixel for pixel, exports, bad uploads (one readable message and a 4xx each), sessions that cannot read
each other's uploads, and nothing written outside the app's temp dir."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

import app as app_script
from complexface.faces import demo_faceset
from complexface.sweep import EditPlan
from tests.conftest import ROOT, compose_config, make_bad_inputs

SECURITY = {"referrer-policy": "no-referrer", "x-content-type-options": "nosniff", "cache-control": "no-store"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    temp = tmp_path_factory.mktemp("app_temp")
    cfg = compose_config("app", [f"server.temp_dir={temp}", "server.max_upload_bytes=3000000"])
    app, _settings = app_script.build(cfg)
    yield app, temp
    app.state.editor_app.close()


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app_bad")
    make_bad_inputs(folder)
    Image.new("RGB", (8000, 64), "gray").save(folder / "wide.png")
    (folder / "huge.jpg").write_bytes(b"\xff\xd8\xff" + np.random.default_rng(0).bytes(3_500_000))
    Image.open(demo_faceset()[0].path).save(folder / "face.gif")
    return folder


def client(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


def decode(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def upload(c: TestClient, path, name: str | None = None):
    return c.post("/api/faces", files={"photo": (name or path.name, path.read_bytes(), "application/octet-stream")})


def test_page_info_and_headers(built):
    c = client(built[0])
    page = c.get("/")
    assert page.status_code == 200 and "<script src=\"static/app.js\"" in page.text and "<script>" not in page.text
    for key, value in SECURITY.items():
        assert page.headers[key] == value
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
    info = c.get("/api/info").json()
    assert "cf_session" in c.cookies
    assert [a["key"] for a in info["aus"]][:3] == ["AU1", "AU2", "AU4"] and len(info["aus"]) == 12
    au12 = next(a for a in info["aus"] if a["key"] == "AU12")
    assert au12["facs"] == "lip corner puller" and au12["ja"] and au12["sides"]
    assert not next(a for a in info["aus"] if a["key"] == "AU26")["sides"]
    assert {r["id"] for r in info["recipes"]} >= {"anger_masking_smile", "contempt_prototype"}
    assert info["demo"][0] == "001.jpg" and info["texts"]["ja"]["title"]
    assert c.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/static/../server.py").status_code == 404


def test_edit_zero_is_the_source_and_sliders_change_it(built):
    c = client(built[0])
    faces = c.post("/api/faces", json={"demo": "001.jpg"}).json()
    face = faces["faces"][0]["id"]
    assert face == "d001-0" and len(faces["faces"]) == 1
    source = decode(c.get(f"/api/crop/{face}"))
    zero = c.post("/api/edit", json={"face": face, "aus": {}})
    assert np.array_equal(decode(zero), source)  # pixel for pixel
    assert np.array_equal(decode(c.post("/api/edit", json={"face": face, "aus": {"AU12": 0, "AU4L": 0}})), source)
    smile = c.post("/api/edit", json={"face": face, "aus": {"AU12": 3, "AU6L": 2}})
    assert smile.headers["x-edit"] == "AU6L+AU12=2+3"
    assert np.abs(decode(smile).astype(int) - source).max() > 30
    wrong = c.post("/api/edit", json={"face": face, "aus": {"AU3": 2}})
    assert wrong.status_code == 422 and "unknown AU" in wrong.json()["error"]
    both = c.post("/api/edit", json={"face": face, "aus": {"AU12": 2, "AU12L": 1}})
    assert both.status_code == 422 and "both" in both.json()["error"]
    assert c.post("/api/edit", content=b"face=1", headers={"content-type": "text/plain"}).status_code == 415
    assert c.post("/api/edit", json=[1]).status_code == 422


def test_measure_text_export_and_recipe_round_trip(built, tmp_path, monkeypatch):
    c = client(built[0])
    face = c.post("/api/faces", json={"demo": "006.jpg"}).json()["faces"][0]["id"]
    m = c.post("/api/measure", json={"face": face, "aus": {"AU12": 3}}).json()
    assert m["status"] == "ok" and 2 < m["measured"]["AU12"] < 4 and m["identity_distance"] < 0.6
    assert c.post("/api/measure", json={"face": face, "aus": {"AU12": 5, "AU12L": 0}}).status_code == 422
    ja = c.post("/api/recipe_for", json={"text": "顔は笑っているけど心の中では怒っている"}).json()
    assert ja["id"] == "anger_masking_smile" and len(ja["top"]) == 3
    assert c.post("/api/recipe_for", json={"text": " "}).status_code == 422
    aus = {"AU4": 2, "AU12R": 3, "AU17": 1}
    photo = decode(c.post("/api/export", json={"face": face, "aus": aus, "what": "photo"}))
    assert photo.shape[:2] == (500, 500)
    crop = decode(c.post("/api/export", json={"face": face, "aus": aus, "what": "crop"}))
    assert np.array_equal(crop, decode(c.post("/api/edit", json={"face": face, "aus": aus})))
    recipe = c.post("/api/export", json={"face": face, "aus": aus, "what": "recipe", "preset": "anger_masking_smile"})
    assert "attachment" in recipe.headers["content-disposition"]
    data = recipe.json()
    assert data["aus"] == {"AU4": 2.0, "AU12R": 3.0, "AU17": 1.0} and data["editor"] == "warp"
    assert len(data["source"]["sha256_16"]) == 16
    path = tmp_path / "recipe.json"
    path.write_bytes(recipe.content)
    assert EditPlan([str(path)]).base[0].values == data["aus"]  # edit.py expression=custom expression.edits=[<file>]


def test_magicface_without_weights_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.delenv("MAGICFACE_WEIGHTS", raising=False)
    monkeypatch.delenv("SD15_DIR", raising=False)
    app, _ = app_script.build(compose_config("app", [f"server.temp_dir={tmp_path}"]))
    c = client(app)
    status = c.get("/api/magicface").json()
    assert status["ready"] is False and "hf download mengtingwei/magicface" in status["message"]
    face = c.post("/api/faces", json={"demo": "001.jpg"}).json()["faces"][0]["id"]
    refused = c.post("/api/render", json={"face": face, "aus": {"AU12": 2}})
    assert refused.status_code == 409 and "MISSING" in refused.json()["error"]


@pytest.mark.parametrize(("name", "status", "words"), [
    ("not_an_image.jpg", 415, "not an image"),
    ("truncated.jpg", 422, "corrupt or truncated"),
    ("wide.png", 413, "8000x64 px"),
    ("no_face.png", 422, "no face found"),
    ("huge.jpg", 413, "limit is 3 MB"),
    ("empty.png", 422, "empty"),
    ("tiny.png", 422, "20x20 px"),
    ("face.gif", 415, "GIF files are not accepted"),
])
def test_bad_uploads_get_one_message_and_a_4xx(built, bad, name, status, words):
    response = upload(client(built[0]), bad / name)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert words in message and "\n" not in message and "Traceback" not in message
    assert not [f for f in built[1].rglob("*") if f.is_file()]  # a refused upload leaves nothing behind


@pytest.mark.parametrize("upload_id", ["d012345678abcdef", "0123456789abcdef"])
def test_an_upload_id_is_never_taken_for_a_bundled_face(built, bad, monkeypatch, upload_id):
    """Upload ids are 16 random hex digits; one in 16 starts with d, as bundled ids (d001) do."""
    import complexface.app.sessions as sessions

    monkeypatch.setattr(sessions.secrets, "token_hex", lambda n: upload_id)
    alice = client(built[0])
    found = upload(alice, bad / "two_faces.jpg").json()
    assert [f["id"] for f in found["faces"]] == [f"{upload_id}-0", f"{upload_id}-1"]
    assert decode(alice.get(f"/api/crop/{upload_id}-1")).shape[2] == 3
    assert decode(alice.get("/api/crop/d001-0")).shape[2] == 3


def test_two_faces_and_sessions_cannot_read_each_other(built, bad):
    app, temp = built
    alice, bob = client(app), client(app)
    found = upload(alice, bad / "two_faces.jpg").json()
    assert len(found["faces"]) == 2 and found["width"] == 750
    first, second = found["faces"]
    assert first["box"][2] - first["box"][0] > 1.5 * (second["box"][2] - second["box"][0])
    crop = decode(alice.get(f"/api/crop/{second['id']}"))
    assert not np.array_equal(crop, decode(alice.get(f"/api/crop/{first['id']}")))
    assert alice.get(f"/api/photo/{found['photo']}").headers["content-type"] == "image/jpeg"
    bob.get("/api/info")
    for request in (lambda c: c.get(f"/api/crop/{second['id']}"), lambda c: c.get(f"/api/photo/{found['photo']}"),
                    lambda c: c.post("/api/edit", json={"face": second["id"], "aus": {"AU12": 2}}),
                    lambda c: c.post("/api/export", json={"face": first["id"], "aus": {}, "what": "photo"})):
        assert request(alice).status_code == 200
        refused = request(bob)
        assert refused.status_code == 404
        assert refused.json()["error"] in ("no such face in this session", "no such photo in this session")
    forged = client(app).get(f"/api/crop/{second['id']}", headers={"cookie": "cf_session=" + "A" * 32})
    assert forged.status_code == 404  # a well-formed id the server never gave out: a new, empty session
    assert "cf_session=" in forged.headers["set-cookie"] and "A" * 32 not in forged.headers["set-cookie"]
    assert "httponly" in forged.headers["set-cookie"].lower() and "samesite=strict" in forged.headers["set-cookie"].lower()
    sessions = [p for p in temp.iterdir()]
    assert all(p.is_dir() and all(f.suffix in (".jpg", ".png", ".webp") for f in p.iterdir()) for p in sessions)
    assert sum(len(list(p.iterdir())) for p in sessions) >= 1
    assert alice.cookies["cf_session"] in {p.name for p in sessions}
    assert json.loads(json.dumps(found))  # plain JSON


def test_render_with_magicface_when_its_weights_are_configured(tmp_path):
    fixture = ROOT / "tests" / "fixtures" / "magicface-tiny"
    app, _ = app_script.build(compose_config("app", [
        f"server.temp_dir={tmp_path}", f"magicface.weights={fixture / 'magicface'}",
        f"magicface.base_model={fixture / 'sd15'}", "magicface.steps=2", "magicface.device=cpu"]))
    c = client(app)
    assert c.get("/api/magicface").json() == {"ready": True, "message": ""}
    face = c.post("/api/faces", json={"demo": "001.jpg"}).json()["faces"][0]["id"]
    assert decode(c.post("/api/render", json={"face": face, "aus": {"AU12": 2}})).shape == (512, 512, 3)
    refused = c.post("/api/render", json={"face": face, "aus": {"AU12L": 2}})
    assert refused.status_code == 422 and "no per-side AUs" in refused.json()["error"]

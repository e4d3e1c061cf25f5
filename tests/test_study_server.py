"""The rater server in process: the whole flow, idempotent answers, resume, and every refused or neutralised
attack (unknown token, another rater's image, traversal, forged form, out-of-design answer, formula injection),
Prolific / MTurk parameters and the platform entry link."""

from __future__ import annotations

import csv
import json
import re

import pytest
from starlette.testclient import TestClient

from complexface.study.design import Design
from complexface.study.export import export
from complexface.study.folder import StudyFolder
from complexface.study.server import ServerSettings, create_app
from complexface.study.store import Store
from complexface.study.tokens import Keys, add_raters, token_hash
from tests.study_helpers import fields, make_study, state

HEADERS = {"content-security-policy": "frame-ancestors 'none'", "referrer-policy": "no-referrer",
           "x-content-type-options": "nosniff", "cache-control": "no-store"}


@pytest.fixture(scope="module")
def folder(study_run_dir, tmp_path_factory) -> StudyFolder:
    path = tmp_path_factory.mktemp("server") / "study"
    make_study(study_run_dir, path, "study.questions.free_text=true", "study.questions.free_text_max=40",
               "study.completion.redirect='https://app.prolific.com/submissions/complete?cc={code}'")
    return StudyFolder(path)


@pytest.fixture(scope="module")
def client(folder) -> TestClient:
    return TestClient(create_app(folder.path, ServerSettings()), follow_redirects=False)


def new_rater(folder: StudyFolder, language: str = "en", group: str = "") -> tuple[str, str]:
    link = add_raters(folder, 1, group, language)[0]
    return link.rater, link.token


def valid_answer(design: Design, entry: dict) -> dict[str, str]:
    if entry["kind"] == "attention":
        return {design.attention_question: entry["expected"]}
    values = {"displayed": "joy", "felt": "anger", "genuineness": "-3", "confidence": "4"}
    return {k: v for k, v in values.items() if k in design.asked(entry["kind"])}


class Walk:
    """One rater through the in-process app."""

    def __init__(self, client: TestClient, folder: StudyFolder, language: str = "en") -> None:
        self.client, self.folder = client, folder
        self.design = Design.load(folder)
        self.rater, self.token = new_rater(folder, language)
        self.url = f"/r/{self.token}"

    @property
    def seq(self) -> list[dict]:
        with Store(self.folder).connect() as conn:
            return json.loads(Store.rater(conn, token_hash(self.token))["seq"])

    def page(self) -> str:
        response = self.client.get(self.url)
        assert response.status_code == 200, response.text
        return response.text

    def begin(self) -> str:
        page = self.page()
        assert state(page) == "consent"
        response = self.client.post(f"{self.url}/consent", data={"csrf": fields(page)["csrf"], "agree": "yes",
                                                                 "choice": "agree"})
        assert response.status_code == 303 and response.headers["location"] == f"../{self.token}"
        page = self.page()
        assert state(page) == "instructions"
        assert self.client.post(f"{self.url}/start", data={"csrf": fields(page)["csrf"]}).status_code == 303
        return self.page()

    def post(self, **changes) -> object:
        page = self.page()
        form = fields(page)
        position = int(form["trial"])
        data = {"trial": str(position), "csrf": form["csrf"], "rt_ms": "1234.5",
                **valid_answer(self.design, self.seq[position]), **changes}
        return self.client.post(f"{self.url}/answer", data={k: v for k, v in data.items() if v is not None})

    def answers(self) -> list[dict]:
        return [a for a in Store(self.folder).answers() if a["rater"] == self.rater]


def test_a_rater_goes_from_consent_to_the_completion_code(client, folder):
    walk = Walk(client, folder)
    page = walk.begin()
    keys = Keys(folder.secret())
    code = keys.completion_code(walk.rater)
    n = len(walk.seq)
    for position in range(n):
        assert state(page) == ("practice" if position < len(walk.design.practice) else "trial")
        assert f"data-trial='{position}'" in page and code not in page
        if position == len(walk.design.practice):
            assert "The practice is over" in page
        image = client.get(f"{walk.url}/img/{position}")
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        response = walk.post()
        assert response.status_code == 303 and response.headers["location"] == f"../{walk.token}"
        page = walk.page()
        if position < n - 1:
            assert code not in page
    assert state(page) == "done" and f"id='completion-code'>{code}<" in page
    assert f"https://app.prolific.com/submissions/complete?cc={code}" in page  # the redirect with the code
    assert [a["trial"] for a in walk.answers()] == list(range(n))
    assert client.get(f"{walk.url}/img/{n - 1}").status_code == 404  # nothing left to show


def test_security_headers_everywhere_and_no_docs(client, folder):
    walk = Walk(client, folder)
    walk.begin()
    for path in (walk.url, f"{walk.url}/img/0", "/static/study.css", "/static/study.js", "/r/" + "x" * 32,
                 "/docs", "/redoc", "/openapi.json", "/"):
        response = client.get(path)
        for name, value in HEADERS.items():
            assert value in response.headers.get(name, ""), (path, name)
        assert "server" not in {k.lower() for k in response.headers} or "uvicorn" not in response.headers["server"]
    for path in ("/docs", "/redoc", "/openapi.json", "/", "/admin"):
        assert client.get(path).status_code == 404
    assert client.get("/static/study.js").headers["content-type"].startswith("text/javascript")


def test_double_submit_and_replays_change_nothing_and_the_back_button_cannot_skip(client, folder):
    walk = Walk(client, folder)
    page = walk.begin()
    form = fields(page)
    first = {"trial": "0", "csrf": form["csrf"], "rt_ms": "900", **valid_answer(walk.design, walk.seq[0])}
    assert client.post(f"{walk.url}/answer", data=first).status_code == 303
    replay = {**first, "displayed": "fear", "rt_ms": "1"}
    assert client.post(f"{walk.url}/answer", data=replay).status_code == 303  # harmless, not an error
    assert client.post(f"{walk.url}/answer", data=first).status_code == 303
    stored = walk.answers()
    assert len(stored) == 1 and stored[0]["displayed"] == first.get("displayed") and stored[0]["rt_ms"] == 900
    # the back button re-requests the page: it shows the next unanswered trial, not the answered one
    assert "data-trial='1'" in walk.page()
    # a later trial cannot be answered before the current one (its form field would not even be valid)
    keys = Keys(folder.secret())
    skip = {"trial": "2", "csrf": keys.form_field(walk.token, "answer:2"), **valid_answer(walk.design, walk.seq[2])}
    assert client.post(f"{walk.url}/answer", data=skip).status_code == 409
    assert len(walk.answers()) == 1
    # closing the tab and coming back resumes at the next unanswered trial
    assert "data-trial='1'" in TestClient(client.app).get(walk.url).text


def test_answers_before_consent_or_start_are_refused(client, folder):
    walk = Walk(client, folder)
    keys = Keys(folder.secret())
    data = {"trial": "0", "csrf": keys.form_field(walk.token, "answer:0"), **valid_answer(walk.design, walk.seq[0])}
    assert client.post(f"{walk.url}/answer", data=data).status_code == 409
    assert client.get(f"{walk.url}/img/0").status_code == 404
    page = walk.page()
    no_agree = {"csrf": fields(page)["csrf"], "choice": "agree"}
    assert client.post(f"{walk.url}/consent", data=no_agree).status_code == 422
    assert walk.answers() == []


def test_declining_records_nothing_but_the_choice(client, folder):
    walk = Walk(client, folder)
    page = walk.page()
    response = client.post(f"{walk.url}/consent", data={"csrf": fields(page)["csrf"], "choice": "decline"})
    assert response.status_code == 200 and state(response.text) == "declined"
    rater = next(r for r in Store(folder).raters() if r["id"] == walk.rater)
    assert rater["declined_at"] and not rater["consented_at"] and walk.answers() == []


def test_unknown_tokens_are_404(client, folder):
    for token in ("A" * 32, "short", "x" * 65, "%00" * 10, "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p"):
        for path in (f"/r/{token}", f"/r/{token}/img/0"):
            response = client.get(path)
            assert response.status_code == 404 and "This link is not valid" in response.text
        assert client.post(f"/r/{token}/answer", data={"trial": "0"}).status_code == 404


def test_images_only_by_the_raters_own_current_position(client, folder):
    a, b = Walk(client, folder), Walk(client, folder)
    a.begin()
    b.begin()
    design = Design.load(folder)
    assert client.get(f"{a.url}/img/0").content == (folder.path / design.stimuli[a.seq[0]["stimulus"]]["file"]).read_bytes()
    assert client.get(f"{a.url}/img/1").status_code == 404  # a future trial
    assert client.get(f"{a.url}/img/-1").status_code == 404 and client.get(f"{a.url}/img/x").status_code == 404
    a.post()
    assert client.get(f"{a.url}/img/0").status_code == 404  # an answered trial
    own = client.get(f"{a.url}/img/1").content
    assert own == (folder.path / design.stimuli[a.seq[1]["stimulus"]]["file"]).read_bytes()
    # b's images are reachable only through b's token: there is no URL by stimulus, file or condition
    stimulus_file = design.stimuli[b.seq[0]["stimulus"]]["file"]
    for path in (f"/{stimulus_file}", f"/static/../{stimulus_file}", f"{a.url}/img/{b.seq[0]['stimulus']}",
                 f"/r/{b.token[:-1]}/img/0"):
        assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", [
    "/static/../design.json", "/static/..%2fdesign.json", "/static/%2e%2e/secret.key", "/static/%2e%2e%2fsecret.key",
    "/design.json", "/secret.key", "/study.sqlite", "/static/study.css/../../secret.key", "/static/",
    "/static/..%5csecret.key", "/r/..%2f..%2fsecret.key", "/p/..%2fsecret.key",
])
def test_path_traversal_finds_nothing(client, folder, path):
    secret = folder.secret().hex()
    response = client.get(path)
    assert response.status_code == 404 and secret not in response.text and "recipe" not in response.text


def test_a_design_pointing_outside_the_stimuli_is_not_served(study_run_dir, tmp_path):
    folder = StudyFolder(tmp_path / "study")
    make_study(study_run_dir, folder.path, "study.practice.trials=1")
    raw = json.loads(folder.design.read_text())
    practice = raw["practice"][0]
    raw["stimuli"][practice]["file"] = "stimuli/../secret.key"
    folder.design.write_text(json.dumps(raw))
    client = TestClient(create_app(folder.path), follow_redirects=False)
    walk = Walk(client, folder)
    walk.begin()
    response = client.get(f"{walk.url}/img/0")
    assert response.status_code == 404 and folder.secret().hex().encode() not in response.content


def test_forged_forms_are_refused(client, folder):
    walk, other = Walk(client, folder), Walk(client, folder)
    walk.begin()
    keys = Keys(folder.secret())
    good = valid_answer(walk.design, walk.seq[0])
    for csrf in (None, "", "0" * 40, keys.form_field(other.token, "answer:0"), keys.form_field(walk.token, "answer:1"),
                 keys.form_field(walk.token, "consent")):
        data = {"trial": "0", **good, **({"csrf": csrf} if csrf is not None else {})}
        assert client.post(f"{walk.url}/answer", data=data).status_code == 403
    assert client.post(f"{other.url}/consent", data={"agree": "yes", "choice": "agree"}).status_code == 403
    assert client.post(f"{other.url}/consent", data={"csrf": keys.form_field(walk.token, "consent"), "agree": "yes",
                                                     "choice": "agree"}).status_code == 403
    assert walk.answers() == [] and other.answers() == []


def test_out_of_design_answers_are_refused(client, folder):
    walk = Walk(client, folder)
    walk.begin()
    for changes in ({"displayed": "happiness"}, {"displayed": None}, {"felt": "JOY"}, {"genuineness": "8"},
                    {"genuineness": "-8"}, {"genuineness": "1.5"}, {"genuineness": None}, {"confidence": "0"},
                    {"confidence": "6"}, {"rt_ms": "-1"}, {"rt_ms": "nan"}, {"rt_ms": "inf"}, {"rt_ms": "1e12"},
                    {"free_text": "x" * 41}, {"admin": "1"}, {"trial": "-1"}, {"trial": "zero"}, {"trial": "1" * 9}):
        assert walk.post(**changes).status_code == 422, changes
    assert walk.post(trial="99").status_code == 403  # the form's anti-forgery field is bound to its trial
    # one value per field: a second "displayed" is not guessed at
    page = walk.page()
    body = (f"trial=0&csrf={fields(page)['csrf']}&displayed=joy&displayed=fear&felt=joy&genuineness=1&confidence=2")
    response = client.post(f"{walk.url}/answer", content=body,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 422
    assert client.post(f"{walk.url}/answer", json={"trial": 0}).status_code == 415
    huge = client.post(f"{walk.url}/answer", content="free_text=" + "a" * 40000,
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413
    assert walk.answers() == []
    # an attention check takes only the question it instructs
    while walk.seq[len(walk.answers())]["kind"] != "attention":
        assert walk.post().status_code == 303
    entry = walk.seq[len(walk.answers())]
    assert walk.post(felt="joy").status_code == 422 and walk.post(genuineness="2").status_code == 422
    assert walk.post(displayed=entry["expected"]).status_code == 303


def test_formula_injection_is_neutralised_in_exports_and_text_escaped(study_run_dir, tmp_path):
    folder = StudyFolder(tmp_path / "study")
    make_study(study_run_dir, folder.path, "study.questions.free_text=true")
    client = TestClient(create_app(folder.path), follow_redirects=False)
    walk = Walk(client, folder)
    walk.begin()
    nasty = iter(["=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-3+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1",
                  "<script>alert(1)</script>", "目が笑っていない"])
    sent = []
    for entry in walk.seq:
        text = next(nasty, "") if entry["kind"] != "attention" else None
        sent += [text] if text else []
        assert walk.post(**({"free_text": text} if text is not None else {})).status_code == 303
    assert len(sent) == 7 and sorted(a["free_text"] for a in walk.answers() if a["free_text"]) == sorted(
        t.strip() for t in sent)
    add_raters(folder, 1, group="=HYPERLINK(\"http://evil\")")  # a group name too
    export(folder.path)
    with open(folder.export / "raters.csv", newline="", encoding="utf-8") as handle:
        groups = [row["rater_group"] for row in csv.DictReader(handle)]
    assert "'=HYPERLINK(\"http://evil\")" in groups
    with open(folder.export / "answers.csv", newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not any(cell.startswith(("=", "+", "@", "\t")) for cell in cells)
    assert not any(cell.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", cell) for cell in cells)
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in cells
    rows = json.loads((folder.export / "answers.json").read_text())
    assert "=HYPERLINK(\"http://evil\",\"x\")" in [r["free_text"] for r in rows]  # JSON keeps the text as given
    assert "\t=1" not in [r["free_text"] for r in rows]  # control characters and outer whitespace are dropped


def test_prolific_parameters_are_kept_hashed_and_apart(client, folder):
    walk = Walk(client, folder)
    pid = "5f1c0ffee0ddba11c0ffee00"
    response = client.get(f"{walk.url}?PROLIFIC_PID={pid}&STUDY_ID=study123&SESSION_ID=sess456")
    assert response.status_code == 303 and response.headers["location"] == walk.token  # the clean URL
    with Store(folder).connect() as conn:
        row = dict(Store.platform_of(conn, walk.rater))
    assert row["platform"] == "prolific" and row["study"] == "study123" and pid not in json.dumps(row)
    database = b"".join(p.read_bytes() for p in folder.path.glob("study.sqlite*"))
    assert pid.encode() not in database and b"sess456" not in database


def test_the_platform_entry_link_enrols_once_and_resumes(client, folder):
    keys = Keys(folder.secret())
    entry = f"/p/{keys.entry_token()}"
    first = client.get(f"{entry}?PROLIFIC_PID=abc123&STUDY_ID=s1&SESSION_ID=x1")
    assert first.status_code == 303 and first.headers["location"].startswith("../r/")
    token = first.headers["location"][len("../r/"):]
    again = client.get(f"{entry}?PROLIFIC_PID=abc123&STUDY_ID=s1&SESSION_ID=x2")
    assert again.headers["location"] == first.headers["location"]  # the same rater: resumes
    assert state(client.get(f"/r/{token}").text) == "consent"
    other = client.get(f"{entry}?PROLIFIC_PID=zzz999")
    assert other.headers["location"] != first.headers["location"]
    assert client.get(f"/p/{'A' * 32}?PROLIFIC_PID=abc123").status_code == 404  # the entry token is a secret
    assert client.get(entry).status_code == 400  # not from a platform
    assert client.get(f"{entry}?PROLIFIC_PID=<script>").status_code == 400
    n = len(Store(folder).raters())
    preview = client.get(f"{entry}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h1")
    assert preview.status_code == 200 and state(preview.text) == "preview" and len(Store(folder).raters()) == n
    ja = client.get(f"{entry}?PROLIFIC_PID=jp0001&lang=ja").headers["location"]
    assert "<html lang='ja'>" in client.get(f"/{ja[3:]}").text


def test_mturk_completion_posts_back_to_mturk_only(study_run_dir, tmp_path):
    folder = StudyFolder(tmp_path / "study")
    make_study(study_run_dir, folder.path, "study.practice.trials=0", "study.attention.trials=0",
               "study.practice.faces=0", "study.completion.code=C0DE42")
    client = TestClient(create_app(folder.path), follow_redirects=False)
    keys = Keys(folder.secret())
    for submit_to, allowed in (("https://workersandbox.mturk.com", True), ("https://evil.example", False)):
        worker = "W" + ("1" if allowed else "2") * 12
        location = client.get(f"/p/{keys.entry_token()}?assignmentId=A{worker}&workerId={worker}&hitId=H1"
                              f"&turkSubmitTo={submit_to}").headers["location"]
        walk = Walk.__new__(Walk)
        walk.client, walk.folder, walk.design = client, folder, Design.load(folder)
        walk.token = location[len("../r/"):]
        walk.url = f"/r/{walk.token}"
        with Store(folder).connect() as conn:
            walk.rater = Store.rater(conn, token_hash(walk.token))["id"]
        walk.begin()
        for _ in walk.seq:
            assert walk.post().status_code == 303
        done = client.get(walk.url)
        assert "C0DE42" in done.text  # the study's own code when one is configured
        if allowed:
            assert f"action='{submit_to}/mturk/externalSubmit'" in done.text
            assert f"form-action 'self' {submit_to}" in done.headers["content-security-policy"]
        else:
            assert "externalSubmit" not in done.text and "evil" not in done.headers["content-security-policy"]


def test_pages_in_japanese(client, folder):
    walk = Walk(client, folder, language="ja")
    page = walk.page()
    assert "<html lang='ja'>" in page and "研究参加への同意" in page
    page = walk.begin()
    assert "この顔はどの感情を表していますか" in page and "どれでもない・その他" in page and "練習 1 / 2" in page
    assert client.get(f"/r/{'Z' * 32}").text.count("このリンクは無効です") == 0  # unknown token: study language

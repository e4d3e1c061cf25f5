"""The rater server: FastAPI app over one study folder, server-rendered pages, no admin pages.

URLs (``{token}`` is a rater's private token, ``{position}`` a place in that rater's order):

- ``GET  /r/{token}``                   the rater's current page: consent, instructions, the next unanswered
                                         trial, or (only once every answer is stored) the completion code.
                                         Prolific / MTurk parameters on the first visit are recorded, then the
                                         browser is sent to the clean URL.
- ``POST /r/{token}/consent|start``     consent (or decline) and the end of the instructions.
- ``POST /r/{token}/answer``            the answer to the current trial; 303 back to ``/r/{token}``.
- ``GET  /r/{token}/img/{position}``    the image of the current trial (by position: it never names the condition).
- ``GET  /p/{entry}?PROLIFIC_PID=...``  the one link a recruiting platform gets: enrols a participant on the first
                                         visit (a token derived from the participant id), resumes them after.
- ``GET  /static/study.css|study.js|icon.svg``  the page's own stylesheet, a few lines of script and its icon
                                         (no CDN, no build step).

Every answer is checked against the design (its trial kind's questions, the option keys, the scales, the free
text cap) and carries an anti-forgery field bound to the token and the trial; a repeated or replayed POST
changes nothing, and an answer to any trial but the next unanswered one is refused (409).
"""

from __future__ import annotations

import hmac
import json
import math
import re
import sqlite3
import threading
import unicodedata
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from complexface.study import pages
from complexface.study.design import CONFIDENCE, GENUINENESS, QUESTIONS, Design
from complexface.study.folder import StudyError, StudyFolder
from complexface.study.store import DUPLICATE, OUT_OF_ORDER, STORED, Store
from complexface.study.text import LANGUAGES, Texts
from complexface.study.tokens import Keys, new_rater_id, token_hash, valid_token
from complexface.web import SecurityHeaders, running

STATIC = Path(__file__).resolve().parent.parent / "assets" / "study"
CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; base-uri 'none'; "
       "object-src 'none'; frame-ancestors 'none'; form-action 'self'")
PLATFORM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MAX_RT_MS = 24 * 3600 * 1000.0
FORM_FIELDS = {"trial", "csrf", "rt_ms", *QUESTIONS}


@dataclass
class ServerSettings:
    """``server`` node of ``conf/study.yaml``."""

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    """The address raters see (the TLS reverse proxy's), used in printed links; null = http://host:port."""
    access_log: bool = False
    """Off by default: request lines carry the rater's token."""
    synchronous: str = "FULL"
    """SQLite ``synchronous``: FULL = an answer acknowledged is on disk (power loss too); NORMAL = survives a
    killed server, not a power cut."""
    busy_timeout_ms: int = 5000
    max_body_bytes: int = 32768
    max_entry_raters: int = 1000
    """Participants the platform entry link enrols at most."""
    mturk_hosts: list[str] = field(default_factory=lambda: ["https://www.mturk.com", "https://workersandbox.mturk.com"])

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class Refused(Exception):
    """A request answered with an error page (status, text key of the message)."""

    def __init__(self, status: int, key: str | None = None) -> None:
        super().__init__(status)
        self.status, self.key = status, key or f"error_{status}"


def _root(path: str) -> str:
    """Relative path from a page URL to the server root: pages work under any proxy prefix."""
    return "../" * max(path.count("/") - 1, 0)


def _clean_text(text: str) -> str:
    """Free text with control characters dropped (newlines and tabs kept), CRLF made LF."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()


def _int_in(value: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[+-]?\d{1,3}", value):
        raise ValueError(value)
    number = int(value)
    if not low <= number <= high:
        raise ValueError(value)
    return number


def validate_answer(design: Design, entry: Mapping, form: Mapping[str, str]) -> dict:
    """The stored values of a trial's form, or ValueError: only this kind of trial's questions, option keys of
    the design, scale values in range, free text within its cap, a finite response time."""
    unknown = set(form) - FORM_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    asked = design.asked(entry["kind"])
    values: dict = {}
    for question in QUESTIONS:
        raw = form.get(question, "")
        if question not in asked:
            if raw.strip():
                raise ValueError(f"{question} is not asked on this trial")
            continue
        if question in ("displayed", "felt"):
            if raw not in design.options:
                raise ValueError(f"{question}: not an option")
            values[question] = raw
        elif question == "genuineness":
            values[question] = _int_in(raw.strip(), *GENUINENESS)
        elif question == "confidence":
            values[question] = _int_in(raw.strip(), *CONFIDENCE)
        elif question == "free_text":
            text = _clean_text(raw)
            if len(text) > int(design.questions["free_text_max"]):
                raise ValueError("free text too long")
            values[question] = text
    rt = form.get("rt_ms", "").strip()
    if rt:
        number = float(rt)
        if not (math.isfinite(number) and 0 <= number <= MAX_RT_MS):
            raise ValueError("rt_ms out of range")
        values["rt_ms"] = round(number, 1)
    return values


class Study:
    """What the app serves: one study folder's design, keys, database and images."""

    def __init__(self, study_dir: str | Path, settings: ServerSettings) -> None:
        self.folder = StudyFolder(study_dir).require()
        self.design = Design.load(self.folder)
        self.settings = settings
        self.keys = Keys(self.folder.secret())
        self.store = Store(self.folder, settings.synchronous, settings.busy_timeout_ms)
        # Held open for the app's life, never used: closing the last connection makes SQLite checkpoint and delete
        # the WAL, which one-connection-per-request would otherwise do after every request.
        self._anchor = sqlite3.connect(self.folder.database, check_same_thread=False)
        self.texts = {lang: Texts(lang, self.design.texts) for lang in LANGUAGES}
        self.n_practice = len(self.design.practice)
        self._sequences: dict[str, list[dict]] = {}
        self._images: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def sequence(self, rater: Mapping) -> list[dict]:
        seq = self._sequences.get(rater["id"])
        if seq is None:
            seq = json.loads(rater["seq"])
            with self._lock:
                if len(self._sequences) > 100_000:
                    self._sequences.clear()
                self._sequences[rater["id"]] = seq
        return seq

    def image(self, stimulus: str) -> bytes:
        """The stimulus file, checked to lie inside ``stimuli/`` (kept in memory: a study has a few hundred)."""
        data = self._images.get(stimulus)
        if data is None:
            path = self.folder.inside(self.design.stimuli[stimulus]["file"], under=self.folder.stimuli)
            data = self._images[stimulus] = path.read_bytes()
        return data

    def code(self, rater: str) -> str:
        fixed = self.design.completion.get("code")
        return str(fixed) if fixed else self.keys.completion_code(rater)


def create_app(study_dir: str | Path, settings: ServerSettings | None = None):
    """The FastAPI app of a study folder (no docs or OpenAPI endpoints, security headers on every response)."""
    settings = settings or ServerSettings()
    study = Study(study_dir, settings)
    design, store, keys = study.design, study.store, study.keys
    static = {name: (STATIC / name).read_bytes() for name in ("study.css", "study.js", "icon.svg")}
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, swagger_ui_oauth2_redirect_url=None)
    app.state.study = study

    def html(content: str, status: int = 200, csp: str | None = None) -> HTMLResponse:
        response = HTMLResponse(content, status_code=status)
        if csp:
            response.headers["content-security-policy"] = csp
        return response

    def error_page(request: Request, status: int, key: str, language: str | None = None,
                   token: str | None = None) -> HTMLResponse:
        texts = study.texts[language or design.language]
        key = key if key in texts.words else "error_title"
        back = f"{_root(request.url.path)}r/{token}" if token and status in (403, 409, 422) else None
        return html(pages.message(texts, _root(request.url.path), texts["error_title"], texts[key], "error", back),
                    status)

    def find(conn: sqlite3.Connection, token: str) -> tuple[dict, int]:
        """The rater of a token and how many trials they have answered; 404 for any other token."""
        if not valid_token(token):
            raise Refused(404)
        rater = store.rater(conn, token_hash(token))
        if rater is None:
            raise Refused(404)
        return dict(rater), store.n_answered(conn, rater["id"])

    async def read_form(request: Request) -> dict[str, str]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise Refused(415, "error_422")
        declared = request.headers.get("content-length")
        if declared and (not declared.isdigit() or int(declared) > settings.max_body_bytes):
            raise Refused(413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                raise Refused(413)
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                              max_num_fields=len(FORM_FIELDS) + 4)
        except (UnicodeDecodeError, ValueError):
            raise Refused(422) from None
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                raise Refused(422)  # one value per field: an ambiguous form is not guessed at
            form[key] = value
        return form

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        token, language = request.path_params.get("token"), None
        if token and valid_token(token):
            with store.connect() as conn:
                rater = store.rater(conn, token_hash(token))
            token, language = (token, rater["language"]) if rater else (None, None)
        return error_page(request, exc.status, exc.key, language, token)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        response = error_page(request, exc.status_code, f"error_{exc.status_code}")
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return error_page(request, 404, "error_404")

    @app.get("/r/{token}")
    async def current(request: Request, token: str):
        with store.connect() as conn:
            rater, answered = find(conn, token)
            params = dict(request.query_params)
            texts = study.texts[rater["language"]]
            root = _root(request.url.path)
            if params:
                if params.get("assignmentId") == PREVIEW:
                    return html(pages.message(texts, root, texts["preview_title"], texts["preview_body"], "preview"))
                found = platform_params(params, keys, settings)  # kept once (the first visit's), ids hashed
                if found:
                    store.attach_platform(conn, rater["id"], *found)
                return RedirectResponse(quote(token), status_code=303)  # the clean URL: ids leave the address bar
            seq = study.sequence(rater)
            if answered >= len(seq):
                return done_page(conn, rater, texts, root)
        if not rater["consented_at"]:
            return html(pages.consent(texts, root, token, keys.form_field(token, "consent"), design.minutes))
        if not rater["started_at"]:
            return html(pages.instructions(texts, root, token, keys.form_field(token, "start"),
                                           len(seq), study.n_practice))
        return html(pages.trial(texts, root, token, keys.form_field(token, f"answer:{answered}"), design, answered,
                                seq[answered], len(seq), study.n_practice, design.questions["free_text_max"]))

    def done_page(conn: sqlite3.Connection, rater: dict, texts: Texts, root: str):
        code = study.code(rater["id"])
        redirect = design.completion.get("redirect")
        redirect = str(redirect).replace("{code}", quote(code, safe="")) if redirect else None
        platform = store.platform_of(conn, rater["id"])
        mturk, csp = None, None
        on_mturk = platform is not None and platform["platform"] == "mturk"
        if on_mturk and platform["assignment"] and platform["submit_to"]:
            mturk = (f"{platform['submit_to']}/mturk/externalSubmit", platform["assignment"])
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(platform["submit_to"]))
            csp = CSP.replace("form-action 'self'", f"form-action 'self' {origin}")
        return html(pages.done(texts, root, code, redirect, str(design.completion.get("platform") or ""), mturk),
                    csp=csp)

    @asynccontextmanager
    async def rater_post(request: Request,
                         token: str) -> AsyncIterator[tuple[sqlite3.Connection, dict, int, dict[str, str]]]:
        """A rater's POST: a connection, the rater, how many trials they have answered and the form (read only for a
        well-formed token; 404 for an unknown one)."""
        if not valid_token(token):
            raise Refused(404)
        form = await read_form(request)
        with store.connect() as conn:
            yield conn, *find(conn, token), form

    def check_step(token: str, step: str, form: Mapping[str, str]) -> None:
        """403 for a form whose anti-forgery field is not of this token and step."""
        if not keys.check_form(token, step, form.get("csrf")):
            raise Refused(403)

    @app.post("/r/{token}/consent")
    async def consent(request: Request, token: str):
        async with rater_post(request, token) as (conn, rater, _, form):
            check_step(token, "consent", form)
            texts = study.texts[rater["language"]]
            if form.get("choice") == "decline":
                store.mark(conn, rater["id"], "declined_at")
                return html(pages.message(texts, _root(request.url.path), texts["declined_title"],
                                          texts["declined_body"], "declined"))
            if form.get("choice") != "agree" or form.get("agree") != "yes":
                raise Refused(422)
            store.mark(conn, rater["id"], "consented_at")
        return RedirectResponse(f"../{quote(token)}", status_code=303)

    @app.post("/r/{token}/start")
    async def start(request: Request, token: str):
        async with rater_post(request, token) as (conn, rater, _, form):
            check_step(token, "start", form)
            if not rater["consented_at"]:
                raise Refused(409)
            store.mark(conn, rater["id"], "started_at")
        return RedirectResponse(f"../{quote(token)}", status_code=303)

    @app.post("/r/{token}/answer")
    async def answer(request: Request, token: str):
        async with rater_post(request, token) as (conn, rater, answered, form):
            position = form.get("trial", "")
            if not position.isdigit() or len(position) > 6:
                raise Refused(422)
            trial = int(position)
            check_step(token, f"answer:{trial}", form)
            seq = study.sequence(rater)
            if trial >= len(seq):
                raise Refused(422)
            if trial < answered:  # a double click or the back button: the stored answer stands
                return RedirectResponse(f"../{quote(token)}", status_code=303)
            if trial > answered or not rater["started_at"]:
                raise Refused(409)
            try:
                values = validate_answer(design, seq[trial], form)
            except ValueError:
                raise Refused(422) from None
            outcome = store.record_answer(conn, rater["id"], trial, values, len(seq))
        if outcome == OUT_OF_ORDER:
            raise Refused(409)
        assert outcome in (DUPLICATE, STORED)
        return RedirectResponse(f"../{quote(token)}", status_code=303)

    @app.get("/r/{token}/img/{position}")
    async def image(token: str, position: str):
        with store.connect() as conn:
            rater, answered = find(conn, token)
        seq = study.sequence(rater)
        if not position.isdigit() or int(position) != answered or answered >= len(seq) or not rater["started_at"]:
            raise Refused(404)  # only the current trial's image, by position
        try:
            data = study.image(seq[answered]["stimulus"])
        except (StudyError, OSError):  # a design.json edited to point outside stimuli/, or a file gone
            raise Refused(404) from None
        return Response(data, media_type="image/jpeg")

    @app.get("/p/{entry}")
    async def enter(request: Request, entry: str):
        """The platform link: enrol (or find again) the participant named by the platform's parameters."""
        if not hmac.compare_digest(entry.encode(), keys.entry_token().encode()):
            raise Refused(404)
        params = dict(request.query_params)
        language = params.get("lang") if params.get("lang") in LANGUAGES else design.language
        texts = study.texts[language]
        if params.get("assignmentId") == PREVIEW:
            return html(pages.message(texts, _root(request.url.path), texts["preview_title"], texts["preview_body"],
                                      "preview"))
        found = platform_params(params, keys, settings)
        if found is None:
            raise Refused(400)
        platform, participant, extra = found
        token = keys.platform_token(platform, participant)
        with store.transaction() as conn:  # check and enrol in one write transaction: a double visit enrols once
            if store.platform_rater(conn, platform, participant) is None:
                if conn.execute("SELECT COUNT(*) FROM platform_ids").fetchone()[0] >= settings.max_entry_raters:
                    raise Refused(403, "error_full")
                rater = new_rater_id()
                index = store.next_list(conn, len(design.lists))
                store.add_rater(conn, rater, token_hash(token), index, design.sequence(index, rater), language, "",
                                platform)
                store.attach_platform(conn, rater, platform, participant, extra)
        return RedirectResponse(f"../r/{quote(token)}", status_code=303)

    @app.get("/static/{name}")
    async def asset(name: str):
        if name not in static:
            raise Refused(404)
        kind = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml"}
        return Response(static[name], media_type=kind[name.rsplit(".", 1)[1]])

    @app.get("/favicon.ico")
    async def favicon():
        return Response(static["icon.svg"], media_type="image/svg+xml")

    @app.get("/robots.txt")
    async def robots():
        return Response("User-agent: *\nDisallow: /\n", media_type="text/plain")

    return SecurityHeaders(app, CSP)


def platform_params(params: Mapping[str, str], keys: Keys, settings: ServerSettings
                    ) -> tuple[str, str, dict[str, str]] | None:
    """(platform, hashed participant id, other parameters) of a Prolific or MTurk visit, or None. Session and
    participant ids are kept only as keyed hashes; MTurk's submit address only if it is a known MTurk host."""
    def plain(name: str) -> str:
        value = params.get(name, "")
        return value if PLATFORM_ID.fullmatch(value) else ""

    if plain("PROLIFIC_PID"):
        session = plain("SESSION_ID")
        return "prolific", keys.participant("prolific", plain("PROLIFIC_PID")), {
            "study": plain("STUDY_ID"), "session": keys.participant("session", session) if session else ""}
    if plain("workerId"):
        submit = params.get("turkSubmitTo", "").rstrip("/")
        return "mturk", keys.participant("mturk", plain("workerId")), {
            "assignment": plain("assignmentId"), "hit": plain("hitId"),
            "submit_to": submit if submit in settings.mturk_hosts else ""}
    return None


def serve(study_dir: str | Path, settings: ServerSettings) -> None:
    """Serve the study in the foreground (uvicorn, one process) until interrupted."""
    import uvicorn

    app = create_app(study_dir, settings)
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=settings.access_log, server_header=False,
                proxy_headers=True, forwarded_allow_ips="127.0.0.1", log_level="info")


@contextmanager
def running_server(study_dir: str | Path, settings: ServerSettings | None = None,
                   timeout: float = 20.0) -> Iterator[str]:
    """A study server in a thread of this process on 127.0.0.1 (a free port); yields its base URL."""
    with running(create_app(study_dir, settings or ServerSettings(port=0)), "study server", timeout) as url:
        yield url

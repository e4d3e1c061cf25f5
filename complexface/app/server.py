"""The AU editor app: one page (plain script, no build step, no CDN) over a small JSON API it uses itself.

API (JSON in, JSON or PNG out; the session is a cookie the first response sets; errors are ``{"error": text}``
with a 4xx status):

- ``GET  /api/info``        AUs (FACS and plain names, en/ja, which have sides), catalog recipes, bundled faces.
- ``POST /api/faces``       a photo upload (multipart field ``photo``: JPEG, PNG or WebP) or ``{"demo": "001.jpg"}``
                             -> ``{"photo", "width", "height", "faces": [{"id", "box", "hash"}]}``, largest first.
- ``GET  /api/photo/{id}``  the uploaded photo (JPEG, at most 1024 px) to pick a face on;
  ``GET /api/crop/{face}``  the face's aligned 512 crop (PNG).
- ``POST /api/edit``        ``{"face": id, "aus": {"AU12": 3, "AU4L": 1}}`` -> the edited crop (PNG; all zero: the
                             source crop, pixel for pixel).
- ``POST /api/measure``     the same body -> requested vs measured AU change, leakage, identity distance, nose drift.
- ``POST /api/recipe_for``  ``{"text": "..."}`` (English or Japanese) -> the closest catalog recipe and the top three.
- ``POST /api/export``      the edit body plus ``"what": "photo" | "crop" | "recipe"`` -> a PNG (the full photo with the
                             edit pasted back, or the crop) or the recipe JSON (AUs, editor, source hash).
- ``GET  /api/magicface``   whether MagicFace weights are configured (else the message naming what to download);
  ``POST /api/render``       the edit by MagicFace (PNG; 409 with that message without weights).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from complexface import api
from complexface.app.sessions import SESSION_ID, Sessions, demo_names, new_session_id
from complexface.au import AUS, BILATERAL, EDITABLE, SAFE_INTENSITY
from complexface.errors import UserError, user_error
from complexface.expressions import load_catalog
from complexface.web import SecurityHeaders, running

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "app"
COOKIE = "cf_session"
CSP = ("default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'none'")
KINDS = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "html": "text/html; charset=utf-8",
         "svg": "image/svg+xml"}
MAX_JSON_BYTES = 16384


@dataclass
class AppSettings:
    """``server`` node of ``conf/app.yaml``."""

    host: str = "127.0.0.1"
    port: int = 8010
    temp_dir: str | None = None
    """Uploads go under this folder (one sub-folder per session); null: a fresh temporary folder, removed at exit."""
    max_upload_bytes: int = 20_000_000
    max_side: int = 6000
    """Longest photo side accepted, in px."""
    max_sessions: int = 100
    max_uploads: int = 4
    """Photos kept per session (the oldest is dropped)."""
    access_log: bool = False
    png_level: int = 0
    """zlib level of the preview PNGs of /api/edit: 0 (stored) is fastest on loopback; 1 halves them for slow links."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def png(image: np.ndarray, level: int = 0) -> bytes:
    """A lossless RGB PNG, fast: no row filter, zlib ``level`` (0: stored, ~1.5 ms and 0.8 MB for a 512 crop, for
    previews on loopback; 1: ~11 ms and about half the size; cv2/PIL at level 1 take 15-19 ms)."""
    height, width = image.shape[:2]
    rows = np.zeros((height, 1 + 3 * width), np.uint8)  # filter byte 0 (none) before every row
    rows[:, 1:] = np.ascontiguousarray(image, np.uint8).reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + chunk(b"IEND", b""))


def small_png(image: np.ndarray) -> bytes:
    """A smaller lossless PNG for downloads (cv2, zlib level 1 with row filters)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return data.tobytes()


def multipart_file(content_type: str, raw: bytes, field: str) -> tuple[bytes, str]:
    """(content, file name) of one file field of a multipart/form-data body held in memory."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + raw)
    if message.is_multipart():
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == field:
                return part.get_payload(decode=True) or b"", part.get_filename() or ""
    raise ApiError(422, f"no file: send the photo in the form field '{field}'")


def _texts() -> dict:
    import yaml

    return yaml.safe_load((ASSETS / "text.yaml").read_text(encoding="utf-8"))


class EditorApp:
    """What the routes use: the sessions, the one warp editor, the measurer, and the lazily made retriever and
    MagicFace editor."""

    def __init__(self, settings: AppSettings, editor=None, measurer=None,
                 retriever: Callable[[], object] | None = None, magicface: Callable[[], object] | None = None) -> None:
        self.settings = settings
        self.owned_temp = settings.temp_dir is None
        self.temp_dir = Path(settings.temp_dir or tempfile.mkdtemp(prefix="complexface-app-"))
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.editor = editor if editor is not None else api.editor_named("warp")
        self.measurer = measurer
        self._retriever_factory = retriever
        self._retriever = None
        self._magicface_factory = magicface
        self._magicface: tuple[object | None, str] | None = None
        self._lazy = threading.Lock()
        self.sessions = Sessions(self.temp_dir, api.faces_in, settings.max_sessions, settings.max_uploads)
        self.catalog = load_catalog()
        self.texts = _texts()

    def retriever(self):
        with self._lazy:
            if self._retriever is None:
                self._retriever = self._retriever_factory() if self._retriever_factory else api.retriever()
            return self._retriever

    def magicface(self) -> tuple[object | None, str]:
        """(the MagicFace editor, "") when its weights are configured, else (None, what to download)."""
        with self._lazy:
            if self._magicface is None:
                if self._magicface_factory is None:
                    self._magicface = (None, "MagicFace is not configured for this app (magicface: null).")
                else:
                    try:
                        self._magicface = (self._magicface_factory(), "")
                    except Exception as err:  # missing weights (wrapped by the config's instantiate): the message
                        cause = user_error(err)
                        if cause is None:
                            raise
                        self._magicface = (None, str(cause))
            return self._magicface

    def info(self) -> dict:
        words = self.texts["au"]
        aus = [{"key": k, "facs": AUS[k].name, "en": words[k]["en"], "ja": words[k]["ja"], "sides": k in BILATERAL}
               for k in EDITABLE]
        recipes = [api.recipe_dict(r) for r in self.catalog.values()]
        return {"aus": aus, "recipes": recipes, "demo": demo_names(), "safe": SAFE_INTENSITY,
                "texts": self.texts["ui"], "emotions": self.texts["emotions"]}

    def close(self) -> None:
        if self.owned_temp:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def create_app(settings: AppSettings | None = None, editor=None, measurer=None, retriever=None, magicface=None):
    """The FastAPI app (no docs endpoints, security headers on every response); ``app.state.editor_app`` holds the
    state (its ``close()`` removes a temp dir it made)."""
    settings = settings or AppSettings()
    state = EditorApp(settings, editor, measurer, retriever, magicface)
    static = {name: (ASSETS / name).read_bytes() for name in ("app.html", "app.js", "app.css", "icon.svg")}
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, swagger_ui_oauth2_redirect_url=None)
    app.state.editor_app = state

    @app.middleware("http")
    async def session_cookie(request: Request, call_next):
        sid = request.cookies.get(COOKIE, "")
        fresh = not (SESSION_ID.fullmatch(sid) and state.sessions.known(sid))
        if fresh:
            sid = new_session_id()
        request.state.session = sid
        response = await call_next(request)
        if fresh and request.url.path.startswith("/api/"):
            state.sessions.open(sid)
            response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(UserError)
    async def user_mistake(request: Request, exc: UserError):
        return JSONResponse({"error": str(exc)}, status_code=getattr(exc, "status", 422))

    async def body(request: Request) -> dict:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "send JSON (content-type: application/json)")
        raw = await request.body()
        if len(raw) > MAX_JSON_BYTES:
            raise ApiError(413, "request too large")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(422, "the request is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(422, "send a JSON object")
        return data

    def edit_of(data: dict):
        aus = data.get("aus", {})
        if not isinstance(aus, (dict, str)):
            raise ApiError(422, 'aus must be an object such as {"AU12": 3} or a string such as "AU6+AU12=3+3"')
        return api.as_edit(aus)

    def face_of(request: Request, data: dict):
        return state.sessions.face(request.state.session, data.get("face"))

    def faces_json(upload) -> dict:
        return {"photo": upload.id, "name": upload.name, "width": int(upload.photo.shape[1]),
                "height": int(upload.photo.shape[0]),
                "faces": [{"id": f"{upload.id}-{i}", "box": [round(float(v), 1) for v in face.landmarks.box],
                           "hash": api.source_hash(face)} for i, face in enumerate(upload.faces)]}

    @app.get("/")
    async def page():
        return Response(static["app.html"], media_type=KINDS["html"])

    @app.get("/static/{name}")
    async def asset(name: str):
        if name not in static or name == "app.html":
            raise ApiError(404, "not found")
        return Response(static[name], media_type=KINDS[name.rsplit(".", 1)[1]])

    @app.get("/favicon.ico")
    async def favicon():
        return Response(static["icon.svg"], media_type=KINDS["svg"])

    @app.get("/api/info")
    async def info():
        return state.info()

    @app.post("/api/faces")
    async def faces(request: Request):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_upload_bytes + 65536:
            raise ApiError(413, f"the file is {int(declared) / 1e6:.1f} MB; the limit is "
                                f"{settings.max_upload_bytes / 1e6:.0f} MB")
        if kind == "application/json":
            data = await body(request)
            upload = await run_in_threadpool(state.sessions.demo, str(data.get("demo", "")))
            return faces_json(upload)
        if kind != "multipart/form-data":
            raise ApiError(415, "upload the photo as multipart/form-data (field 'photo') "
                                "or send {\"demo\": \"001.jpg\"}")
        raw = bytearray()
        async for chunk in request.stream():  # in memory, never spooled to the system's temp dir
            raw += chunk
            if len(raw) > settings.max_upload_bytes + 65536:
                raise ApiError(413, f"the file is over {settings.max_upload_bytes / 1e6:.0f} MB, the limit")
        data, filename = multipart_file(request.headers["content-type"], bytes(raw), "photo")
        upload = await run_in_threadpool(state.sessions.add, request.state.session, data, filename,
                                         settings.max_upload_bytes, settings.max_side)
        return faces_json(upload)

    @app.get("/api/photo/{upload_id}")
    def photo(request: Request, upload_id: str):
        upload = state.sessions.upload(request.state.session, upload_id)
        image = Image.fromarray(upload.photo)
        image.thumbnail((1024, 1024))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=88)
        return Response(out.getvalue(), media_type="image/jpeg")

    @app.get("/api/crop/{face_id}")
    def crop(request: Request, face_id: str):
        return Response(png(state.sessions.face(request.state.session, face_id).aligned.image), media_type="image/png")

    @app.post("/api/edit")
    async def edit(request: Request):
        data = await body(request)
        face, change = face_of(request, data), edit_of(data)
        image = await run_in_threadpool(api.edit_crop, face, change, state.editor)
        return Response(png(image, settings.png_level), media_type="image/png",
                        headers={"x-edit": change.label})

    @app.post("/api/measure")
    async def measure(request: Request):
        data = await body(request)
        face, change = face_of(request, data), edit_of(data)

        def run() -> dict:
            out = api.edit_crop(face, change, state.editor)
            return api.measure(face, out, change, state.measurer)

        return await run_in_threadpool(run)

    @app.post("/api/recipe_for")
    async def recipe_for(request: Request):
        data = await body(request)
        text = data.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > 500:
            raise ApiError(422, "describe the expression in a few words (at most 500 characters)")
        return await run_in_threadpool(lambda: api.recipe_for(text, state.retriever()))

    @app.post("/api/export")
    async def export(request: Request):
        data = await body(request)
        face, change, what = face_of(request, data), edit_of(data), data.get("what", "photo")
        if what == "recipe":
            recipe = {"format": "complexface-recipe/1", "aus": dict(change.values), "edit": change.label,
                      "editor": "warp", "source": {"face": data.get("face"), "sha256_16": api.source_hash(face)},
                      "preset": data.get("preset") if isinstance(data.get("preset"), str) else None,
                      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            return Response(json.dumps(recipe, indent=1, ensure_ascii=False), media_type="application/json",
                            headers={"content-disposition": 'attachment; filename="recipe.json"'})
        if what not in ("photo", "crop"):
            raise ApiError(422, "what must be photo, crop or recipe")

        def run() -> bytes:
            from complexface.faces.align import paste_back

            out = api.edit_crop(face, change, state.editor)
            return small_png(paste_back(face.photo, face.aligned, out) if what == "photo" else out)

        name = f"{what}_{change.slug}.png"
        return Response(await run_in_threadpool(run), media_type="image/png",
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    @app.get("/api/magicface")
    def magicface():
        editor, message = state.magicface()
        return {"ready": editor is not None, "message": message}

    @app.post("/api/render")
    async def render(request: Request):
        data = await body(request)
        face, change = face_of(request, data), edit_of(data)
        editor, message = await run_in_threadpool(state.magicface)
        if editor is None:
            raise ApiError(409, message)
        image = await run_in_threadpool(api.edit_crop, face, change, editor)
        return Response(png(image), media_type="image/png")

    return SecurityHeaders(app, CSP)


def serve(app, settings: AppSettings) -> None:
    """Serve in the foreground (uvicorn, one process) until interrupted."""
    import uvicorn

    uvicorn.run(app, host=settings.host, port=settings.port, access_log=settings.access_log, server_header=False,
                log_level="warning")


@contextmanager
def running_app(app, timeout: float = 30.0) -> Iterator[str]:
    """The app in a thread of this process on 127.0.0.1 (a free port); yields its base URL."""
    with running(app, "app server", timeout) as url:
        yield url

"""Sessions and their uploads: an unguessable id per browser, uploads checked and kept under the app's temp dir.

A session sees the bundled faces and its own uploads only; an upload's faces are addressed as
``<upload id>-<index>`` (random ids), and any id a session does not own is answered as unknown.
"""

from __future__ import annotations

import io
import re
import secrets
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from complexface.errors import UserError
from complexface.faces.faceset import DEMO_DIR
from complexface.faces.image_io import load_image, to_rgb
from complexface.faces.pipeline import Face

FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{32}")
FACE_ID = re.compile(r"(?:d(?P<demo>\d{3})|(?P<upload>[0-9a-f]{16}))-(?P<index>\d{1,2})")
"""A face: ``d001-0`` (bundled face 001.jpg) or ``<upload id>-<index>`` (0: the largest face of the upload)."""


class UploadError(UserError, ValueError):
    """An upload that cannot be used; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    """One photo: its pixels and its faces (largest first)."""

    id: str
    photo: np.ndarray
    faces: list[Face]
    name: str


@dataclass
class Session:
    uploads: OrderedDict[str, Upload] = field(default_factory=OrderedDict)


def demo_names() -> list[str]:
    """The bundled faces' file names."""
    return sorted(p.name for p in DEMO_DIR.glob("*.jpg"))


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


def read_upload(data: bytes, max_bytes: int, max_side: int) -> tuple[np.ndarray, str]:
    """An uploaded file -> (upright RGB array, file suffix); UploadError with one readable sentence otherwise."""
    if not data:
        raise UploadError("the file is empty; choose a JPEG, PNG or WebP photo")
    if len(data) > max_bytes:
        raise UploadError(f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB", 413)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in FORMATS:
                raise UploadError(f"{image.format} files are not accepted; use a JPEG, PNG or WebP photo", 415)
            if max(image.size) > max_side:
                raise UploadError(f"the photo is {image.size[0]}x{image.size[1]} px; the limit is {max_side} px "
                                  f"on the longer side, so scale it down first", 413)
            image.load()
            suffix = FORMATS[image.format]
            rgb = to_rgb(ImageOps.exif_transpose(image) or image)
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise UploadError("this file is not an image; choose a JPEG, PNG or WebP photo", 415) from None
    except (OSError, SyntaxError, ValueError):
        raise UploadError("the image is corrupt or truncated; export it again and retry") from None
    if min(rgb.shape[:2]) < 32:
        raise UploadError(f"the photo is only {rgb.shape[1]}x{rgb.shape[0]} px; use one at least 128 px a side")
    return np.ascontiguousarray(rgb), suffix


class Sessions:
    """Every session's uploads (at most ``max_sessions`` sessions, ``max_uploads`` photos each, least recent
    dropped first), the bundled faces (shared) and the temp dir the uploads are written to (and nothing else)."""

    def __init__(self, temp_dir: Path, find_faces, max_sessions: int = 100, max_uploads: int = 4) -> None:
        self.temp_dir = Path(temp_dir)
        self.find_faces = find_faces
        self.max_sessions, self.max_uploads = max_sessions, max_uploads
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._demo: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def known(self, session_id: str | None) -> bool:
        with self._lock:
            return bool(session_id) and session_id in self._sessions

    def open(self, session_id: str) -> Session:
        """The session (created if new; the least recently used one past ``max_sessions`` is dropped)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = Session()
                while len(self._sessions) > self.max_sessions:
                    old, _ = self._sessions.popitem(last=False)
                    shutil.rmtree(self.temp_dir / old, ignore_errors=True)
            self._sessions.move_to_end(session_id)
            return session

    def demo(self, name: str) -> Upload:
        """A bundled face's photo (by file name), found once per process."""
        if name not in demo_names():
            raise UploadError(f"unknown bundled face {name!r}", 404)
        if name not in self._demo:
            photo = load_image(DEMO_DIR / name)
            self._demo[name] = Upload(f"d{Path(name).stem}", photo, self.find_faces(photo, name)[:1], name)
        return self._demo[name]

    def add(self, session_id: str, data: bytes, name: str, max_bytes: int, max_side: int) -> Upload:
        """Check an upload, find its faces, write it under ``<temp dir>/<session>/`` and keep it for the session."""
        photo, suffix = read_upload(data, max_bytes, max_side)
        faces = self.find_faces(photo, "the photo")
        upload = Upload(secrets.token_hex(8), photo, faces, Path(name or "photo").name[:80])
        folder = self.temp_dir / session_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{upload.id}{suffix}").write_bytes(data)
        session = self.open(session_id)
        with self._lock:
            session.uploads[upload.id] = upload
            while len(session.uploads) > self.max_uploads:
                old, _ = session.uploads.popitem(last=False)
                for file in folder.glob(f"{old}.*"):
                    file.unlink(missing_ok=True)
        return upload

    def upload(self, session_id: str, upload_id: str) -> Upload:
        session = self.open(session_id)
        found = session.uploads.get(upload_id)
        if found is None:
            raise UploadError("no such photo in this session", 404)
        return found

    def face(self, session_id: str, face_id: object) -> Face:
        """A face this session may use: a bundled one or one of its own uploads' (``FACE_ID``)."""
        found = FACE_ID.fullmatch(str(face_id)) if isinstance(face_id, str) else None
        if found is None:
            raise UploadError("no such face in this session", 404)
        index = int(found["index"])  # an upload id is 16 hex digits (it may start with d), a bundled one d + 3 digits
        faces = (self.demo(f"{found['demo']}.jpg") if found["demo"] else self.upload(session_id, found["upload"])).faces
        if index >= len(faces):
            raise UploadError("no such face in this session", 404)
        return faces[index]

"""Rater tokens and private links; keyed hashes for anti-forgery fields, completion codes and platform ids.

A token is 32 random URL-safe characters, shown once (printed and written to the links CSV) and stored as
its SHA-256. Everything else derives from the study's secret key with HMAC-SHA256, so nothing here needs
to be stored: the anti-forgery field of a form is HMAC(token, purpose), a rater's completion code is
HMAC(rater id), a platform participant id is kept as HMAC(platform, id), and the platform entry link's
token is HMAC("entry").
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from complexface.atomic import atomic_write
from complexface.settings import require
from complexface.study.design import Design
from complexface.study.folder import StudyFolder
from complexface.study.store import Store
from complexface.study.text import check_language

TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def new_rater_id() -> str:
    return "r" + secrets.token_hex(6)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_token(token: str) -> bool:
    return TOKEN.fullmatch(token) is not None


class Keys:
    """HMACs under the study's secret key."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self._secret, "\x1f".join(parts).encode(), hashlib.sha256).digest()

    def form_field(self, token: str, purpose: str) -> str:
        return self._mac("form", token, purpose).hex()[:40]

    def check_form(self, token: str, purpose: str, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(self.form_field(token, purpose), str(value))

    def completion_code(self, rater: str) -> str:
        return base64.b32encode(self._mac("code", rater)).decode()[:10]

    def participant(self, platform: str, value: str) -> str:
        return self._mac("participant", platform, value).hex()

    def platform_token(self, platform: str, participant: str) -> str:
        """The token of a participant enrolled through the platform link (``participant`` already hashed): the
        same on every visit, so they resume, and never stored."""
        return base64.urlsafe_b64encode(self._mac("token", platform, participant)).decode().rstrip("=")[:32]

    def entry_token(self) -> str:
        return base64.urlsafe_b64encode(self._mac("entry")).decode().rstrip("=")[:32]


@dataclass
class Link:
    rater: str
    token: str
    list: int
    group: str
    language: str

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/r/{self.token}"


def add_raters(folder: StudyFolder, n: int, group: str = "", language: str | None = None, source: str = "link",
               ids: Sequence[str] | None = None) -> list[Link]:
    """Make ``n`` raters of a study (random ids unless ``ids`` are given), each on the list with the fewest raters,
    with an order seeded by their id; returns their tokens."""
    require(n >= 1, f"n must be >= 1, got {n}")
    design, store = Design.load(folder), Store(folder)
    language = check_language(language or design.language, "language")
    ids = list(ids) if ids is not None else [new_rater_id() for _ in range(n)]
    require(len(ids) == n, f"{len(ids)} rater ids for {n} raters")
    links = []
    with store.transaction() as conn:
        for rater in ids:
            token = new_token()
            index = store.next_list(conn, len(design.lists))
            store.add_rater(conn, rater, token_hash(token), index, design.sequence(index, rater), language,
                            str(group or ""), source)
            links.append(Link(rater, token, index, str(group or ""), language))
    return links


def write_links(folder: StudyFolder, links: Sequence[Link], base_url: str) -> Path:
    """``links/links-<time>.csv`` (rater, list, group, language, url), readable by the owner only (as every
    file the study writes): the only place the tokens are kept."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    path = folder.links / f"links-{stamp}.csv"
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rater", "list", "group", "language", "url"])
        for link in links:
            writer.writerow([link.rater, link.list, link.group, link.language, link.url(base_url)])
    return path


def entry_urls(keys: Keys, base_url: str) -> dict[str, str]:
    """The one URL to give each recruiting platform (participants are enrolled on their first visit and resume
    after): Prolific's study URL with its placeholders, and MTurk's ExternalQuestion URL (MTurk appends
    assignmentId, workerId, hitId and turkSubmitTo)."""
    base = f"{base_url.rstrip('/')}/p/{keys.entry_token()}"
    return {"prolific": f"{base}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
                        f"&SESSION_ID={{{{%SESSION_ID%}}}}",
            "mturk": base}

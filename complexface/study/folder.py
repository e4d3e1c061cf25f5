"""One study = one folder: where its design, stimuli, database, secret, links and exports live."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from complexface.errors import UserError

DESIGN = "design.json"
DATABASE = "study.sqlite"
SECRET = "secret.key"
STIMULI = "stimuli"
LINKS = "links"
EXPORT = "export"


class StudyError(UserError, ValueError):
    """A study folder or request that cannot be used (no design yet, already created, unknown action, ...)."""


class StudyFolder:
    """The paths of a study folder; ``require()`` checks that ``create`` has run."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser().resolve()

    @property
    def design(self) -> Path:
        return self.path / DESIGN

    @property
    def database(self) -> Path:
        return self.path / DATABASE

    @property
    def stimuli(self) -> Path:
        return self.path / STIMULI

    @property
    def links(self) -> Path:
        return self.path / LINKS

    @property
    def export(self) -> Path:
        return self.path / EXPORT

    @property
    def exists(self) -> bool:
        return self.design.exists()

    def require(self) -> StudyFolder:
        if not self.exists:
            raise StudyError(f"no study in {self.path}: run `python study.py action=create input=<run dir> "
                             f"study.dir={self.path}` first")
        return self

    def secret(self) -> bytes:
        """The study's private key (anti-forgery fields, completion codes, platform-id hashes): made once,
        readable by the owner only, never served."""
        path = self.path / SECRET
        if not path.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
        return bytes.fromhex(path.read_text().strip())

    def inside(self, relative: str, under: Path | None = None) -> Path:
        """``relative`` resolved, refused unless it lies inside ``under`` (default: the study folder)."""
        root = (under or self.path).resolve()
        target = (self.path / relative).resolve()
        if not target.is_relative_to(root):
            raise StudyError(f"{relative!r} lies outside {root}")
        return target

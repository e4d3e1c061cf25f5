"""Telling user mistakes (one readable line) from bugs (a stack trace)."""

from __future__ import annotations

from complexface.au import AUError
from complexface.faces import FaceSetError, ImageError
from complexface.measure.identity import IdentityModelError

USER_ERRORS: tuple[type[BaseException], ...] = (AUError, FaceSetError, ImageError, IdentityModelError)


def user_error(err: BaseException, extra: tuple[type[BaseException], ...] = ()) -> BaseException | None:
    """The user-facing error behind ``err`` (following ``__cause__`` through wrappers such as a
    config framework's instantiation error), or None if it is a bug."""
    kinds = USER_ERRORS + extra
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__
    return None

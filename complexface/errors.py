"""Telling user mistakes (one readable line) from bugs (a stack trace)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import TypeVar

from complexface.au import AUError
from complexface.editors.magicface import MagicFaceWeightsError
from complexface.expressions import CatalogError
from complexface.faces import FaceSetError, ImageError
from complexface.measure.identity import IdentityModelError
from complexface.settings import SettingError

T = TypeVar("T")

USER_ERRORS: tuple[type[BaseException], ...] = (AUError, CatalogError, FaceSetError, ImageError, IdentityModelError,
                                                 MagicFaceWeightsError, SettingError)


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


def exit_on_user_error(call: Callable[[], T], extra: tuple[type[BaseException], ...] = ()) -> T:
    """Run ``call``; a user mistake prints ``error: <one line>`` and exits with status 2, a bug raises."""
    try:
        return call()
    except Exception as err:
        cause = user_error(err, extra)
        if cause is None:
            raise
        print(f"error: {config_key(err, cause)}{cause}", file=sys.stderr)
        sys.exit(2)


def config_key(err: BaseException, cause: BaseException) -> str:
    """``"<key>: "`` when a wrapper between ``err`` and ``cause`` names the config node that failed (an
    instantiation error's ``full_key: data.model`` line), else ``""``."""
    seen: BaseException | None = err
    while seen is not None and seen is not cause:
        found = re.search(r"^full_key: (\S+)$", str(seen), re.MULTILINE)
        if found:
            return f"{found.group(1)}: "
        seen = seen.__cause__
    return ""

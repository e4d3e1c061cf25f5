"""Telling user mistakes (one readable line) from bugs (a stack trace).

A leaf module: every module that raises a user-facing error subclasses ``UserError`` next to the code
that raises it, and the entry scripts catch that one base class.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A mistake in what was asked for or given (an unknown AU, a bad setting, a missing file or folder):
    its message is one sentence that says what to do, printed without a stack trace."""


def _config_error(err: BaseException) -> bool:
    """A mandatory config value left unset (``???``) is a user mistake too (checked without importing the
    config library)."""
    kind = type(err)
    return kind.__name__ == "MissingMandatoryValue" and kind.__module__.startswith("omegaconf")


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind ``err`` (following ``__cause__`` through wrappers such as a
    config framework's instantiation error), or None if it is a bug."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, UserError) or _config_error(seen):
            return seen
        seen = seen.__cause__
    return None


def exit_on_user_error(call: Callable[[], T]) -> T:
    """Run ``call``; a user mistake prints ``error: <one line>`` and exits with status 2, a bug raises."""
    try:
        return call()
    except Exception as err:
        cause = user_error(err)
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

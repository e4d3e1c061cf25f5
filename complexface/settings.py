"""Settings (config values) out of their range: one readable error that names the setting and what it allows."""

from __future__ import annotations

from complexface.errors import UserError


class SettingError(UserError, ValueError):
    """A setting is outside what it allows; the message names it, its allowed values and what was given."""


def require(condition: bool, message: str) -> None:
    """Raise SettingError(``message``) unless ``condition``."""
    if not condition:
        raise SettingError(message)

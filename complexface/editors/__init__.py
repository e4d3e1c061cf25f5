"""AU editors: the interface and its backends."""

from complexface.editors.base import Editor

__all__ = ["Editor"]

"""A self-contained HTML report: images inlined as data URIs, so the file opens offline anywhere."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from complexface.atomic import write_text

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:4px 0}.note{color:#555;font-size:.9em}
figure{margin:0 0 1em 0}figcaption{font-size:.85em;color:#444}
"""
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def data_uri(path: Path) -> str:
    return f"data:{_MIME[path.suffix.lower()]};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@dataclass
class Section:
    """A heading with paragraphs, tables, a bulleted list and captioned images, in that order."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    images: list[tuple[Path, str]] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)

    def render(self) -> str:
        parts = [f"<h2>{html.escape(self.title)}</h2>"]
        parts += [f"<p class='note'>{html.escape(p)}</p>" for p in self.paragraphs]
        parts += [t.to_html(float_format=lambda v: f"{v:.3f}", na_rep="", border=0) for t in self.tables]
        if self.bullets:
            parts.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in self.bullets) + "</ul>")
        parts += [f"<figure><img src='{data_uri(p)}' alt='{html.escape(c)}'><figcaption>{html.escape(c)}"
                  f"</figcaption></figure>" for p, c in self.images if p.exists()]
        return "\n".join(parts)


def write_report(path: Path, title: str, sections: Sequence[Section]) -> Path:
    """Write one HTML file with every image embedded."""
    body = "\n".join(s.render() for s in sections)
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
    return write_text(path, page)

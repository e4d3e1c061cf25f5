"""Labelled image grids: one per face (edits x intensities) and one per group and edit."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from complexface.faces.image_io import save_image
from complexface.runs import OK, Manifest, Record
from complexface.sweep import EditPlan

Cell = Path | None
"""An image file, or None for a failed item (drawn as a grey tile)."""


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fmt(scale: float) -> str:
    return f"{scale:+g}" if scale else "0"


class Thumbnails:
    """Loads each image file once as a square thumbnail."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._cache: dict[Path, Image.Image] = {}

    def __call__(self, path: Path) -> Image.Image:
        if path not in self._cache:
            with Image.open(path) as im:
                self._cache[path] = im.convert("RGB").resize((self.size, self.size), Image.Resampling.LANCZOS)
        return self._cache[path]


def draw_grid(cells: Sequence[Sequence[Cell]], row_labels: Sequence[str], col_labels: Sequence[str],
              title: str, thumbnails: Thumbnails) -> np.ndarray:
    """Compose a labelled grid image (RGB uint8) from image files."""
    thumb = thumbnails.size
    pad, head, side = 4, thumb // 5 + 10, max(90, thumb)
    font = _font(max(11, thumb // 10))
    rows, cols = len(cells), len(col_labels)
    title_font = _font(max(12, thumb // 8))
    width = max(side + cols * (thumb + pad) + pad, int(title_font.getlength(title)) + 2 * pad)
    height = head * 2 + rows * (thumb + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill="black", font=title_font)
    for c, label in enumerate(col_labels):
        x = side + c * (thumb + pad) + thumb // 2
        draw.text((x, head + head // 2), label, fill="black", font=font, anchor="mm")
    for r, row in enumerate(cells):
        y = 2 * head + r * (thumb + pad)
        draw.multiline_text((pad, y + thumb // 2), _wrap(row_labels[r]), fill="black", font=font, anchor="lm")
        for c, cell in enumerate(row):
            x = side + c * (thumb + pad)
            if cell is not None and cell.exists():
                canvas.paste(thumbnails(cell), (x, y))
            else:
                draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=(200, 200, 200))
                draw.text((x + thumb // 2, y + thumb // 2), "failed", fill="black", font=font, anchor="mm")
    return np.asarray(canvas)


def _wrap(label: str, width: int = 12) -> str:
    """Break a row label at '=', '+' or '_' so that lines stay about ``width`` characters."""
    lines, line = [], ""
    for piece in re.split(r"(?<=[_+])|(?==)", label):
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        line += piece
    return "\n".join([*lines, line])


def _cells(run_dir: Path, by_key: dict[tuple[str, str], Record], face_id: str, plan: EditPlan, row: int) -> list[Cell]:
    cells: list[Cell] = []
    source = next((r.source_crop for r in by_key.values() if r.face_id == face_id and r.source_crop), "")
    cells.append(run_dir / source if source else None)
    for edit in plan.grid[row]:
        record = by_key.get((face_id, edit.label))
        cells.append(run_dir / record.crop if record and record.status == OK else None)
    return cells


def write_grids(manifest: Manifest, plan: EditPlan, thumb: int = 128) -> dict[str, list[Path]]:
    """Write ``grids/faces/<face>.jpg`` and ``grids/groups/<group>/<edit>.jpg``; returns the paths."""
    run_dir = manifest.run_dir
    by_key = {r.key: r for r in manifest}
    faces: dict[str, str] = {}
    for r in manifest:
        faces.setdefault(r.face_id, r.group)
    cols = ["source"] + [_fmt(s) for s in plan.scales]
    written: dict[str, list[Path]] = {"faces": [], "groups": []}
    thumbnails = Thumbnails(thumb)
    for face_id, group in sorted(faces.items()):
        cells = [_cells(run_dir, by_key, face_id, plan, i) for i in range(len(plan.base))]
        image = draw_grid(cells, plan.row_labels, cols, f"{face_id}  ({group})", thumbnails)
        written["faces"].append(save_image(image, run_dir / "grids" / "faces" / f"{face_id}.jpg"))
    members: dict[str, list[str]] = defaultdict(list)
    for face_id, group in sorted(faces.items()):
        members[group].append(face_id)
    for group, ids in sorted(members.items()):
        for i, (row, slug) in enumerate(zip(plan.row_labels, plan.row_slugs, strict=True)):
            cells = [_cells(run_dir, by_key, fid, plan, i) for fid in ids]
            name = row if row == plan.base[i].label else f"{row} ({plan.base[i].label})"
            title = f"{name} x scale  |  group: {group} (perceived appearance)"
            image = draw_grid(cells, ids, cols, title, thumbnails)
            written["groups"].append(save_image(image, run_dir / "grids" / "groups" / group / f"{slug}.jpg"))
    return written

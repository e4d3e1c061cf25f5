"""Labelled image grids: one per face (edits x intensities), one per group and edit, and for a catalog run one
per face comparing each complex recipe with the prototypes of its felt and displayed emotions."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from complexface.expressions import prototypes
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


def _tile(canvas: Image.Image, xy: tuple[int, int], cell: Cell, thumbnails: Thumbnails,
          font: ImageFont.ImageFont, note: str = "failed") -> None:
    """Paste ``cell``'s thumbnail at ``xy``, or a grey tile saying ``note`` when there is no image."""
    x, y = xy
    thumb = thumbnails.size
    if cell is not None and cell.exists():
        canvas.paste(thumbnails(cell), (x, y))
        return
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=(200, 200, 200))
    draw.text((x + thumb // 2, y + thumb // 2), note, fill="black", font=font, anchor="mm")


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
        draw.multiline_text((x, head + head // 2), _wrap(label, max(8, thumb // 7)), fill="black", font=font,
                            anchor="mm", align="center")
    for r, row in enumerate(cells):
        y = 2 * head + r * (thumb + pad)
        draw.multiline_text((pad, y + thumb // 2), _wrap(row_labels[r]), fill="black", font=font, anchor="lm")
        for c, cell in enumerate(row):
            _tile(canvas, (side + c * (thumb + pad), y), cell, thumbnails, font)
    return np.asarray(canvas)


@dataclass(frozen=True)
class Panel:
    """One captioned tile of a comparison row: an image file, or a grey tile saying ``note`` when there is none."""

    label: str
    image: Cell
    note: str = "failed"


def comparison_rows(plan: EditPlan, crops: Mapping[str, Cell], source: Cell) -> list[tuple[str, list[Panel]]]:
    """Each complex recipe (felt != displayed) of a catalog ``plan`` beside its emotions' prototypes.

    ``crops``: one face's edit per plan row (None: failed). A row: the source, the recipe, then a panel per
    part of the felt and of the displayed emotion (``joy+sadness``: two): that emotion's prototype recipe,
    the source for ``neutral``, or a grey tile when the catalog has no prototype for it (``embarrassment``,
    ``mixed``) or the run did not make it.
    """
    protos = prototypes(plan.recipes)
    rows = []
    for rid in plan.rows:
        recipe = plan.recipes.get(rid)
        if recipe is None or not recipe.complex:
            continue
        panels = [Panel("source", source), Panel("recipe", crops.get(rid))]
        for role, emotion in (("felt", recipe.felt), ("displayed", recipe.displayed)):
            for part in (p.strip() for p in emotion.split("+")):
                proto = protos.get(part)
                if part == "neutral":
                    panels.append(Panel(f"{role}: neutral\n(source)", source))
                elif proto is None:
                    panels.append(Panel(f"{role}: {part}", None, "no prototype"))
                else:
                    panels.append(Panel(f"{role}: {part}\n{proto}", crops.get(proto),
                                        "failed" if proto in crops else "not in run"))
        rows.append((rid, panels))
    return rows


def draw_panels(rows: Sequence[tuple[str, Sequence[Panel]]], title: str, thumbnails: Thumbnails) -> np.ndarray:
    """Compose rows of captioned tiles (RGB uint8): the row label, then each panel with its label below it."""
    thumb = thumbnails.size
    pad, side, size, title_size = 4, max(90, thumb), max(10, thumb // 11), max(12, thumb // 8)
    font, title_font = _font(size), _font(title_size)
    head, caption = title_size + 3 * pad, 2 * (size + 3) + pad
    cols = max((len(panels) for _, panels in rows), default=0)
    width = max(side + cols * (thumb + pad) + pad, int(title_font.getlength(title)) + 2 * pad)
    canvas = Image.new("RGB", (width, head + len(rows) * (thumb + caption + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill="black", font=title_font)
    for r, (label, panels) in enumerate(rows):
        y = head + r * (thumb + caption + pad)
        draw.multiline_text((pad, y + thumb // 2), _wrap(label), fill="black", font=font, anchor="lm")
        for c, panel in enumerate(panels):
            x = side + c * (thumb + pad)
            _tile(canvas, (x, y), panel.image, thumbnails, font, panel.note)
            draw.multiline_text((x + thumb // 2, y + thumb + 2), panel.label, fill="black", font=font, anchor="ma",
                                align="center")
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
    """Write ``grids/faces/<face>.jpg``, ``grids/groups/<group>/<edit>.jpg``, the contact sheet ``grids/sheet.jpg``
    (rows = faces, columns = the source and every edit at the scale nearest 1) and, for a catalog plan with
    complex recipes, ``grids/compare/<face>.jpg`` (at that scale); returns the paths."""
    run_dir = manifest.run_dir
    by_key = {r.key: r for r in manifest}
    faces: dict[str, str] = {}
    for r in manifest:
        faces.setdefault(r.face_id, r.group)
    cols = ["source"] + [_fmt(s) for s in plan.scales]
    written: dict[str, list[Path]] = {"faces": [], "groups": [], "compare": [], "sheet": []}
    sheet: list[list[Cell]] = []
    thumbnails = Thumbnails(thumb)
    scale = min(range(len(plan.scales)), key=lambda j: (abs(plan.scales[j] - 1), -plan.scales[j]))
    for face_id, group in sorted(faces.items()):
        cells = [_cells(run_dir, by_key, face_id, plan, i) for i in range(len(plan.base))]
        image = draw_grid(cells, plan.row_labels, cols, f"{face_id}  ({group})", thumbnails)
        written["faces"].append(save_image(image, run_dir / "grids" / "faces" / f"{face_id}.jpg"))
        source = cells[0][0] if cells else None
        sheet.append([source] + [row[1 + scale] for row in cells])
        rows = comparison_rows(plan, {r: c[1 + scale] for r, c in zip(plan.rows, cells, strict=True)}, source)
        if rows:
            title = (f"{face_id} ({group}): complex recipes vs the prototypes of their felt and displayed "
                     f"emotions, scale {plan.scales[scale]:g}")
            image = draw_panels(rows, title, thumbnails)
            written["compare"].append(save_image(image, run_dir / "grids" / "compare" / f"{face_id}.jpg"))
    if sheet:
        labels = [label.removesuffix("_prototype") for label in plan.row_labels]
        title = f"Contact sheet: every edit at scale {plan.scales[scale]:g}, one face a row (group in brackets)"
        rows = [f"{face_id}\n({group})" for face_id, group in sorted(faces.items())]
        image = draw_grid(sheet, rows, ["source", *labels], title, thumbnails)
        written["sheet"].append(save_image(image, run_dir / "grids" / "sheet.jpg"))
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

"""What fills a newly opened mouth: a cavity with depth, the upper teeth fixed to the skull (and the
lower ones riding the jaw), in the face's own lighting."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from complexface.editors.displacement import jacobian, sample, upsample
from complexface.editors.warp.geometry import LOWER_LID, UPPER_LID, Geometry, smoothstep
from complexface.faces.align import AlignedFace
from complexface.faces.landmarks import LOWER_INNER_LIP, UPPER_INNER_LIP

OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
INNER_LIPS = UPPER_INNER_LIP + LOWER_INNER_LIP[-2:0:-1]
IRISES = ((468, (469, 470, 471, 472)), (473, (474, 475, 476, 477)))

# Upper teeth, one entry per tooth from the midline out (central and lateral incisor, canine, two
# premolars, first molar), in a frontal view of the arch: the teeth further round it look narrower.
UPPER_EDGES = np.array([0.0, 0.34, 0.58, 0.77, 0.9, 1.01, 1.12])
"""Boundaries between the upper teeth, in half mouth widths (``across``) from the midline."""
UPPER_RISE = np.array([0.0, 0.012, 0.004, 0.014, 0.022, 0.032])
"""How far above the central incisors' edge each tooth's edge (or cusp tip) sits (face units)."""
UPPER_CROWN = np.array([0.17, 0.145, 0.165, 0.13, 0.12, 0.11])
"""Crown heights (face units; a central incisor is ~10.5 mm, the inter-ocular distance ~63 mm)."""
UPPER_LIGHT = np.array([1.0, 0.93, 0.82, 0.64, 0.5, 0.36])
"""Brightness of each tooth: further round the arch it turns away and lies deeper in the mouth."""
CORNER_START = np.array([0.55, 0.4, 1.0, 1.0, 1.0, 1.0])
CORNER_RISE = np.array([0.006, 0.009, 0.0, 0.0, 0.0, 0.0])
"""Rounded incisal corners of the incisors: from where (across the tooth, 0 centre, 1 side) and how high."""
CUSP = np.array([0.0, 0.0, 0.009, 0.006, 0.005, 0.005])
"""Cusp height of the canine and back teeth: their edge rises from the tip towards both sides."""
LOWER_EDGES = np.array([0.0, 0.2, 0.42, 0.62, 0.8, 0.95])
"""Boundaries between the (narrower) lower teeth, in half mouth widths from the midline."""
INCISAL_DROP = 0.065
"""The upper central incisors' edge below the closed mouth's seam (face units, ~4 mm): what a
relaxed open mouth shows under a resting upper lip."""
UPPER_SHOW = 0.045
"""Least height (face units) of the upper teeth a wide opening shows, even under a stretched upper lip."""
LOWER_SHOW = 0.028
"""Height (face units) of the lower incisors' tips a wide opening (a jaw drop) shows above the lower lip."""
TEETH_TINT = np.array([1.0, 0.96, 0.86])
"""Teeth are slightly warmer (yellower) than the sclera that sets their colour."""
SHADOW = 0.02
"""Width (face units) of the thin shadow an inner lip edge casts on the teeth."""
REF, RISE, CORNER, DOME, FADE, LOW_RISE, LOW_LIGHT = range(3, 10)
"""``MouthModel.dentition`` planes after the colour (0-2): distance (px) below the upper central incisors'
edge line, how far (px) each upper tooth's edge rises above it (1e3: no tooth), the cavity's darkening
into its corners, the tongue's dome, the back teeth's fading into the cheeks' shadow, how far (px) each
lower tooth's tip sits below the lower row's top line, and the lower teeth's shading."""
OUTSIDE = np.array([0, 0, 0, 0, 1e3, 0.5, 0, 0.4, 1e3, 0], np.float32)
"""The dentition planes outside their box (beyond the mouth's corners)."""


@dataclass
class MouthModel:
    """What fills a newly opened mouth: a cavity with depth, upper teeth fixed to the skull, lower teeth.

    ``above`` (the seam gate) and ``span`` are per-face grid fields; a pixel of the edited crop
    belongs to the new cavity when its source lies in the seam band and the warp stretched it.
    The upper teeth do not move with the lips: ``dentition`` is drawn once per face in crop
    pixels (their edge ``INCISAL_DROP`` under the closed mouth's seam), and an opening shows what
    it uncovers of them, from the upper lip down (gums only when the lip rises far). The lower
    teeth ride the jaw, just inside the lower lip, and show only in wide openings.
    ``lip_offsets`` lead from each inner-lip landmark to just outside that band, into its own lip
    (zero for other landmarks; see ``WarpEditor.landmark_motion``).
    """

    above: np.ndarray
    span: np.ndarray
    lip: np.ndarray
    teeth: np.ndarray | None
    """Colour of lit teeth; None when the source mouth is open (its own teeth show)."""
    unit: float
    lip_offsets: np.ndarray
    dentition: np.ndarray
    """(10, h, w) float32 planes over a box of crop pixels around the mouth, fixed to the skull: the upper
    teeth's and gums' colour, then ``REF`` .. ``LOW_LIGHT``."""
    dentition_origin: tuple[int, int]
    """Top-left crop pixel (y, x) of ``dentition``."""

    @property
    def inner(self) -> np.ndarray:
        return _inner(self.lip)

    @classmethod
    def of(cls, face: AlignedFace, geometry: Geometry, step: int) -> MouthModel:
        mask = np.zeros(face.image.shape[:2], np.uint8)
        xy = face.landmarks.xy
        cv2.fillPoly(mask, [np.round(xy[list(OUTER_LIPS)]).astype(np.int32)], 1)
        cv2.fillPoly(mask, [np.round(xy[list(INNER_LIPS)]).astype(np.int32)], 0)
        lip = np.median(face.image[mask > 0], axis=0) if mask.any() else np.array([150.0, 90, 90])
        teeth = _teeth_colour(face, mask) if geometry.mouth_gap < 0.02 else None
        offsets = np.zeros_like(xy)
        offsets[list(UPPER_INNER_LIP[1:-1])] = -1.5 * step * geometry.frame.ey
        offsets[list(LOWER_INNER_LIP[1:-1])] = 1.5 * step * geometry.frame.ey
        dentition, origin = _dentition(geometry, step, face.size, teeth, lip)
        return cls(geometry.above_seam().astype(np.float32), geometry.span.astype(np.float32),
                   lip.astype(np.float32), teeth, geometry.frame.unit, offsets, dentition, origin)

    def paint(self, out: np.ndarray, back: np.ndarray, window: tuple[int, int, int, int], step: int) -> None:
        """Composite the cavity into ``out`` (in place) where the warp opened the seam band."""
        r0, _, c0, _ = window
        gy, gx = np.indices(back.shape[:2], dtype=np.float32)
        x, y = gx + c0 + back[..., 0] / step, gy + r0 + back[..., 1] / step
        jac = jacobian(back, step)
        stretch = 1.0 / np.maximum(jac[..., 0] * jac[..., 3] - jac[..., 1] * jac[..., 2], 1e-3)
        fields = np.dstack([sample(self.above, x, y), sample(self.span, x, y), stretch])
        rows, cols = np.nonzero((fields[..., 2] > 1.15) & (fields[..., 1] > 0) & (np.abs(fields[..., 0] - 0.5) < 0.45))
        if rows.size == 0:
            return
        a0, a1, b0, b1 = max(rows.min() - 2, 0), rows.max() + 3, max(cols.min() - 2, 0), cols.max() + 3
        block, (y0, x0) = upsample(fields[a0:a1, b0:b1], r0 + a0, c0 + b0, step, out.shape[0])
        above, span, stretch = np.moveaxis(block, -1, 0)
        alpha = smoothstep((above - 0.06) / 0.2) * smoothstep((0.94 - above) / 0.2)
        alpha *= smoothstep((stretch - 1.15) / 0.6) * smoothstep(span / 0.2)
        rows, cols = np.flatnonzero(alpha.max(axis=1) > 0.002), np.flatnonzero(alpha.max(axis=0) > 0.002)
        if rows.size == 0:
            return
        alpha = alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        y0, x0 = y0 + rows[0], x0 + cols[0]
        region = out[y0:y0 + alpha.shape[0], x0:x0 + alpha.shape[1]]
        color = self._interior(alpha, self._dentition_at(y0, x0, *alpha.shape))
        region[:] = np.clip(region + (color - region) * alpha[..., None] + 0.5, 0, 255).astype(np.uint8)

    def _dentition_at(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """The dentition planes over the crop pixel block (y0, x0, h, w); no teeth outside its box."""
        dy, dx = y0 - self.dentition_origin[0], x0 - self.dentition_origin[1]
        H, W = self.dentition.shape[1:]
        if dy >= 0 and dx >= 0 and dy + h <= H and dx + w <= W:
            return self.dentition[:, dy:dy + h, dx:dx + w]
        view = np.empty((len(OUTSIDE), h, w), np.float32)
        view[:] = OUTSIDE[:, None, None]
        ya, yb, xa, xb = max(dy, 0), min(dy + h, H), max(dx, 0), min(dx + w, W)
        if ya < yb and xa < xb:
            view[:, ya - dy:yb - dy, xa - dx:xb - dx] = self.dentition[:, ya:yb, xa:xb]
        return view

    def _interior(self, alpha: np.ndarray, planes: np.ndarray) -> np.ndarray:
        """Colour of the opened mouth over a pixel block from its opening (``alpha``) and the skull-fixed
        ``dentition`` planes.

        Per column the opening runs from ``top`` (the upper lip's inner edge) to ``bottom`` (the lower
        lip's). The cavity is darkest at the back, away from the lips and under the upper teeth, and
        in its inner corners; a jaw drop shows the tongue low in it and the tips of the lower teeth
        above the lower lip. The upper teeth show from the upper lip down to their edge, which
        stays above the lower lip's shadow in a narrow opening and shows at least its tips in a wide one.
        """
        unit = self.unit
        top, bottom, opening = _extent(alpha > 0.5)
        depth = np.arange(len(alpha), dtype=np.float32)[:, None]
        from_top, to_bottom = depth - top, bottom - depth
        corner = planes[CORNER]
        near_lip = np.exp(np.maximum(np.minimum(from_top, to_bottom), 0) * np.float32(-1 / (0.03 * unit)))
        floor = np.clip(from_top * (1 / np.maximum(opening, 1)), 0, 1)
        shade = (0.14 + 0.16 * near_lip + 0.08 * floor) * corner
        jaw = smoothstep((opening - 0.1 * unit) / (0.12 * unit))
        if jaw.max() > 0:  # the tongue: a low dome behind the lower teeth, lit on its top
            crest = bottom - (0.4 * jaw * opening) * planes[DOME]
            below_crest = depth - crest
            tongue = smoothstep(below_crest * np.float32(1 / (0.04 * unit)) + 0.5) * (jaw > 0)
            lit = 0.5 - 0.2 * _ramp(below_crest * np.float32(1 / (0.1 * unit)))
            shade += (lit * corner - shade) * tongue
        if self.teeth is None:
            return shade[..., None] * self.inner
        # a narrow opening keeps a dark line under the upper teeth (their edge line lifts to fit), a
        # wide one shows at least their tips under a stretched upper lip
        room = top + np.maximum(0.7 * opening, opening - 0.06 * unit)
        least = top + np.minimum(UPPER_SHOW * unit * smoothstep(opening / (0.15 * unit)), room - top)
        edge = depth - np.clip(depth - planes[REF], least, room) + planes[RISE]  # < 0 on an upper tooth
        deep = 0.45 * smoothstep(opening * np.float32(1 / (0.12 * unit)))  # the upper teeth's shadow below them
        shade *= 1 - deep + deep * _ramp(edge * np.float32(1 / (0.05 * unit)))
        upper = _ramp(0.5 - edge) * planes[FADE] * (opening > 0)
        clear = 0.35 * _ramp(edge * np.float32(1 / (0.02 * unit)) + 1) * upper  # the translucent incisal edge
        lit = (0.7 + 0.3 * _ramp((from_top + 1.5) * np.float32(1 / (SHADOW * unit)))) * (upper - clear)
        shade *= 1 - upper
        show = LOWER_SHOW * unit * smoothstep((opening - 0.14 * unit) / (0.14 * unit))
        lower = None
        if show.max() >= 0.5:  # the lower incisors' tips just above the lower lip, in wide openings
            cover = _ramp((depth - (bottom - show) - planes[LOW_RISE]) * 0.5 + 0.5) * (show >= 0.5) * (1 - upper)
            shade *= 1 - cover
            lower = cover * planes[LOW_LIGHT] * (0.75 + 0.25 * _ramp(to_bottom * np.float32(1 / (0.02 * unit))))
        edge_colour, inner = self.lip * 0.25 + 18, self.inner
        channels = []
        for c in range(3):
            channel = shade * inner[c] + lit * planes[c] + clear * edge_colour[c]
            channels.append(channel if lower is None else channel + lower * self.teeth[c])
        return cv2.merge(channels)


def _inner(lip: np.ndarray) -> np.ndarray:
    """The mouth's inside (cheeks, tongue): the lips' colour, redder."""
    return np.clip(lip * np.float32([1.2, 0.8, 0.85]), 0, 255)


def _extent(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of a block: first and last row of the opening (smoothed, bridged over empty columns)
    and its height (0 where the column has none)."""
    has = inside.any(axis=0)
    n = len(inside)
    top = inside.argmax(axis=0).astype(np.float32)
    bottom = (n - 1 - inside[::-1].argmax(axis=0)).astype(np.float32)
    if not has.any():
        return top, bottom, np.zeros_like(top)
    cols = np.flatnonzero(has)
    where = np.arange(len(has))
    top, bottom = (_smooth_columns(np.interp(where, cols, v[cols]), 5).astype(np.float32) for v in (top, bottom))
    return top, bottom, np.where(has, bottom - top + 1, 0).astype(np.float32)


def _teeth_colour(face: AlignedFace, lips: np.ndarray) -> np.ndarray:
    """Lit teeth colour in the face's own lighting: a little darker and warmer than its sclera (the
    brightest part of the eye openings outside the irises), never darker than the skin round the mouth."""
    xy = face.landmarks.xy
    eyes = np.zeros(face.image.shape[:2], np.uint8)
    for side in range(2):
        cv2.fillPoly(eyes, [np.round(xy[list(UPPER_LID[side] + LOWER_LID[side][::-1])]).astype(np.int32)], 1)
    for center, ring in IRISES:
        radius = float(np.linalg.norm(xy[list(ring)] - xy[center], axis=1).mean())
        cv2.circle(eyes, tuple(int(v) for v in np.round(xy[center])), round(1.05 * radius), 0, -1)
    around = cv2.dilate(lips, np.ones((25, 25), np.uint8)) > lips
    skin = np.percentile(face.image[around], 90, axis=0)
    pixels = face.image[eyes > 0].astype(np.float64)
    if len(pixels) >= 20:
        luma = pixels @ (0.299, 0.587, 0.114)
        sclera = pixels[luma >= np.percentile(luma, 85)].mean(axis=0)
    else:
        sclera = skin
    grey = float(sclera.mean())
    cast = np.clip(0.6 * sclera / max(grey, 1) + 0.4, 0.92, 1.08)  # keep part of the light's colour cast
    level = float(np.clip(0.9 * grey, 0.95 * float(skin.mean()), 225))
    return (level * cast * TEETH_TINT / TEETH_TINT.mean()).astype(np.float32)


def _dentition(geometry: Geometry, step: int, size: int, teeth: np.ndarray | None,
               lip: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The ``MouthModel.dentition`` planes in crop pixels over a box round the mouth, and its top-left pixel.

    Each upper tooth is rounded (darker to its sides, darker round the arch), set off by a thin dark
    gap, with rounded incisal corners (incisors) or a cusp (canine, premolars); the gum line is
    scalloped. Everything is a function of the crop pixel (the skull), none of the edit.
    """
    frame, unit = geometry.frame, geometry.frame.unit
    center, half = geometry.mouth_center, geometry.mouth_half
    across = ((geometry.U - center) / half).astype(np.float32)  # along the mouth, in half mouth widths
    seam = geometry.seam_v[np.abs(across) < 1]
    lo, hi = (float(seam.min()), float(seam.max())) if seam.size else (float(geometry.seam_v.mean()),) * 2
    corners = frame.to_xy(np.array([[u, v] for u in (center - 2.2 * half, center + 2.2 * half)
                                    for v in (lo - 0.35, hi + 0.6)]))
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, size)
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, size)
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    gx, gy = (px - (step - 1) / 2) / step, (py - (step - 1) / 2) / step
    below = sample(((geometry.V - geometry.seam_v) * unit).astype(np.float32), gx, gy).astype(np.float64)
    a = np.abs(sample(across, gx, gy)).astype(np.float64)
    out = np.empty((len(OUTSIDE), *below.shape))
    out[REF] = below - INCISAL_DROP * unit
    out[CORNER] = 1 - 0.5 * smoothstep((a - 0.55) / 0.5)
    out[DOME] = np.clip(1 - (a / 0.8) ** 2, 0, 1)
    out[FADE] = 1 - 0.6 * smoothstep((a - 0.6) / 0.45)
    if teeth is None:
        out[:3], out[RISE], out[LOW_RISE], out[LOW_LIGHT] = 0, 1e3, 1e3, 0
        return out.astype(np.float32), (int(y0), int(x0))
    k, s, width = _teeth_along(a, UPPER_EDGES)
    m = np.abs(2 * s - 1)
    corner = np.clip((m - CORNER_START[k]) / np.maximum(1 - CORNER_START[k], 1e-3), 0, 1)
    rise = UPPER_RISE[k] + CORNER_RISE[k] * corner**2 * np.where(s < 0.5, 0.6, 1.0) + CUSP[k] * m**1.6
    edge = (INCISAL_DROP - rise) * unit
    crown = UPPER_CROWN[k] * unit
    gum_line = edge - crown + 0.3 * crown * m**2.5  # the papillae reach down between the teeth
    up = np.clip((edge - below) / crown, 0, 1)  # 0 at the edge, 1 at the gum line
    arch = 1 - 0.3 * smoothstep((a - 0.3) / 0.8)
    gap = np.exp(-0.5 * (np.minimum(s, 1 - s) * width * half * unit / 0.55) ** 2)
    light = UPPER_LIGHT[k] * arch * (1 - 0.2 * (2 * s - 1) ** 2 - 0.08 * s) * (1 - 0.1 * up**2) * (1 - 0.25 * gap)
    shadow = 0.3 * _inner(lip)  # teeth darken towards the warm shade of the mouth, not to grey
    tint = 1 - np.array([0.0, 0.03, 0.1])[:, None, None] * up**2  # yellower at the neck
    tooth = shadow[:, None, None] + (teeth[:, None, None] * tint - shadow[:, None, None]) * light
    back = 1 - 0.6 * smoothstep((a - 0.55) / 0.45)  # gums behind the canines lie in the cheeks' shadow
    gum = (0.75 * lip + 0.25 * lip.mean() + 15)[:, None, None] * (arch * back * (0.8 + 0.2 * (1 - m * m)))
    out[:3] = tooth + (gum - tooth) * smoothstep((gum_line - below) / 1.5 + 0.5)
    out[RISE] = np.where(a < UPPER_EDGES[-1], rise * unit, 1e3)
    k, s, width = _teeth_along(a, LOWER_EDGES)
    m = np.abs(2 * s - 1)
    out[LOW_RISE] = unit * (0.008 * smoothstep((m - 0.5) / 0.5) + 0.02 * (a > LOWER_EDGES[-1]))
    gap = np.exp(-0.5 * (np.minimum(s, 1 - s) * width * half * unit / 0.55) ** 2)
    out[LOW_LIGHT] = 0.72 * (1 - 0.4 * smoothstep((a - 0.25) / 0.7)) * (1 - 0.15 * m * m) * (1 - 0.2 * gap)
    return out.astype(np.float32), (int(y0), int(x0))


def _teeth_along(a: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which tooth (index), where across it (0 on its midline side .. 1) and its width, at ``a`` half mouth
    widths from the midline, for teeth between ``edges``."""
    k = np.clip(np.searchsorted(edges, a, side="right") - 1, 0, len(edges) - 2)
    width = edges[k + 1] - edges[k]
    return k, np.clip((a - edges[k]) / width, 0, 1), width


def _ramp(x: np.ndarray) -> np.ndarray:
    """Linear ramp: 0 at x <= 0, 1 at x >= 1 (for antialiased edges a pixel or two wide)."""
    return np.clip(x, 0, 1)


def _smooth_columns(values: np.ndarray, width: int = 9) -> np.ndarray:
    """Moving average along a row of per-column values (edges repeated)."""
    padded = np.pad(values, width // 2, mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")

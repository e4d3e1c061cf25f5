"""Glasses frames stay rigid: found on the source crop as thin dark (or coloured) bars across the nose bridge
and around the eyes, kept out of the warp (the warp moves the skin under a frame inpainted away, the
frame's own pixels go back on top)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from complexface.editors.warp.geometry import LOWER_LID, UPPER_LID, FaceFrame
from complexface.faces.align import AlignedFace
from complexface.faces.landmarks import IRIS_CENTERS

REGION = (-1.45, 1.45, -0.65, 0.65)
"""Where frames are looked for: (u0, u1, v0, v1) in face units around the point between the irises."""
BRIDGE = (-0.09, 0.09, -0.38, 0.16)
"""Where a bridge crosses the nose between the eyes (u0, u1, v0, v1, face units)."""
BRIDGE_CONTRAST = 40.0
"""Least median contrast (grey levels, in the channel where it is largest) of a bar across the nose bridge that
counts as a frame: the bundled faces without glasses reach 23 (brow furrows, the shadow of the brow ridge), the
three with glasses 126 to 149."""
MAX_HALF_WIDTH = 0.045
"""Thickest bar the detector looks for (half its width, face units)."""
MIN_RIM = 0.35
"""Least share of each rim's turn around its eye where a bar stands out (a half-rim frame shows its upper half)."""
BEND = 0.3
"""What a traced rim pays per pixel it moves in or out, as a share of the bridge's contrast (rims are smooth)."""
GROW = 1
"""Rounds of growing a frame's mask by two pixels into what does not look like the skin around it."""
STANDS_OUT = (0.4, 0.22)
"""A traced bar is there where its contrast reaches the first share of the bridge's, and on along the path
while it keeps the second."""


@dataclass
class Glasses:
    """A detected frame: its pixels kept rigid, and the source with the frame inpainted away for the warp.

    ``mask`` (float32, 1 on the frame, feathered outwards over a pixel or two) covers the block
    ``box`` = (y0, y1, x0, x1) of the crop; ``clean`` is the source crop with the frame inpainted,
    equal to the source wherever ``mask`` < 1.
    """

    mask: np.ndarray
    box: tuple[int, int, int, int]
    clean: np.ndarray
    contrast: float
    """Median contrast of the bridge (grey levels): how clearly the frame stands out."""

    def __post_init__(self) -> None:
        """What ``paint`` reads: the frame's core (``mask`` 1) as a mask of its box, and its feathered edge as flat
        indices of the crop's channel values with their opacity."""
        y0, _, x0, _ = self.box
        size, channels = self.clean.shape[1], self.clean.shape[2]
        self._core = (self.mask >= 1).astype(np.uint8)
        ys, xs = np.nonzero((self.mask > 0) & (self.mask < 1))
        pixels = (ys + y0) * size + xs + x0
        self._edge = (pixels[:, None] * channels + np.arange(channels)).ravel()
        self._alpha = np.repeat(self.mask[ys, xs].astype(np.float32), channels)

    @classmethod
    def detect(cls, face: AlignedFace) -> Glasses | None:
        """The face's glasses frame, or None when no frame crosses its nose bridge.

        The bridge is the cue (a bar across the nose between the eyes, which no face has of its own);
        from its colour and thickness the rims are traced around each eye (a closed path of greatest
        bar contrast in polar coordinates), then the arms outward from the rims. The frame is the parts
        of these paths where the bar stands out; both rims must show over a good part of their turn.
        """
        finder = _Finder(face)
        bridge = finder.bridge()
        if bridge is None:
            return None
        rims = [finder.rim(side) for side in (-1, 1)]
        if any(np.mean(rim.present) < MIN_RIM for rim in rims):
            return None
        arms = [finder.arm(side, rim) for side, rim in zip((-1, 1), rims)]
        bars = np.zeros(finder.rect.shape[:2], np.uint8)
        for piece in [bridge, *rims, *arms]:
            finder.measure(piece)
            piece.draw(bars)
        bars[_eye_openings(finder.xy, bars.shape, 0)] = 0
        return cls._of(face, bars, finder)

    @classmethod
    def _of(cls, face: AlignedFace, bars: np.ndarray, finder: _Finder) -> Glasses | None:
        to_rect, contrast, eyes = finder.to_rect, finder.contrast, finder.eyes
        size = face.size
        hard = cv2.warpAffine(bars.astype(np.float32), to_rect, (size, size), flags=cv2.INTER_LINEAR,
                              borderValue=0) > 0.25
        if not hard.any():
            return None
        ys, xs = np.nonzero(hard)
        pad = 2 * GROW + 8  # work on the frame's box (inpainting reads a few pixels around what it fills)
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, size)
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, size)
        image = face.image[y0:y1, x0:x1]
        hard = hard[y0:y1, x0:x1].astype(np.uint8)
        keep_out = cv2.warpAffine(eyes.astype(np.float32), to_rect, (size, size), flags=cv2.INTER_LINEAR,
                                  borderValue=0)[y0:y1, x0:x1] > 0.25
        ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        for _ in range(GROW):  # the frame's edges the traced bars left out: pixels next to it unlike the skin
            wider = cv2.dilate(hard, ring)
            around = cv2.inpaint(image, wider, 3, cv2.INPAINT_TELEA)
            odd = np.abs(image.astype(np.int16) - around).max(axis=2) > max(18.0, 0.15 * contrast)
            hard = np.where((wider > 0) & odd & ~keep_out, 1, hard).astype(np.uint8)
        # the skin under the frame, filled from what borders it (a brow the frame touches smears into the fill)
        patch = cv2.inpaint(image, cv2.dilate(hard, np.ones((3, 3), np.uint8)), 3, cv2.INPAINT_TELEA)
        clean = face.image.copy()
        clean[y0:y1, x0:x1] = np.where(hard[..., None] > 0, patch, image)
        full = np.zeros((size, size), np.uint8)
        full[y0:y1, x0:x1] = hard
        hard = full
        soft = np.maximum(hard.astype(np.float32), cv2.GaussianBlur(hard.astype(np.float32), (0, 0), 1.0) * 1.6)
        soft = np.minimum(soft, 1.0)
        ys, xs = np.nonzero(soft > 1e-3)
        box = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
        mask = soft[box[0]:box[1], box[2]:box[3]].copy()
        mask[mask < 1e-3] = 0
        return cls(mask, box, clean, contrast)

    def paint(self, out: np.ndarray, source: np.ndarray, block: tuple[int, int, int, int]) -> None:
        """Put the frame's source pixels back over ``out`` (in place) when the pixel block (y0, y1, x0, x1) the
        warp touched meets the frame (outside the block ``out`` is the source already)."""
        if block[0] >= self.box[1] or block[1] <= self.box[0] or block[2] >= self.box[3] or block[3] <= self.box[2]:
            return
        y0, y1, x0, x1 = self.box
        region = out[y0:y1, x0:x1]
        cv2.copyTo(source[y0:y1, x0:x1], self._core, region)  # in place
        flat_out, flat_src = out.reshape(-1), source.reshape(-1)
        under = flat_out[self._edge].astype(np.float32)
        flat_out[self._edge] = (under + (flat_src[self._edge] - under) * self._alpha + 0.5).astype(np.uint8)


def _rectify(image: np.ndarray, frame: FaceFrame) -> tuple[np.ndarray, np.ndarray]:
    """The eye band of the crop resampled upright in the face frame at the crop's scale, and the 2x3 map
    from its pixels to crop pixels."""
    u0, u1, v0, v1 = REGION
    s = frame.unit
    origin = frame.origin + s * (u0 * frame.ex + v0 * frame.ey)
    to_rect = np.array([[frame.ex[0], frame.ey[0], origin[0]], [frame.ex[1], frame.ey[1], origin[1]]])
    rect = cv2.warpAffine(image, to_rect, (round((u1 - u0) * s), round((v1 - v0) * s)),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return rect.astype(np.float32), to_rect


def _ridge(image: np.ndarray, widths: range) -> tuple[np.ndarray, np.ndarray]:
    """Contrast of a dark horizontal bar centred on each pixel: over half widths t, the least of the mean
    above and below it (past a pixel of anti-aliasing) minus its mean (2t + 1 rows), in the channel where
    it is largest; and the widest bar's half width that keeps most of it."""
    pad = 2 * widths[-1] + 4
    padded = cv2.copyMakeBorder(image, pad, pad, 0, 0, cv2.BORDER_REPLICATE)
    h = image.shape[0]
    best = np.full(image.shape[:2], -np.inf, np.float32)
    arg = np.zeros(image.shape[:2], np.int16)
    for t in widths:
        side = max(2, t + 1)
        centre = cv2.blur(padded, (1, 2 * t + 1))[pad:pad + h]
        sides = cv2.blur(padded, (1, side))  # row y: the mean of rows y - side // 2 .. y + side - 1 - side // 2
        up, down = t + 1 + side - side // 2, t + 2 + side // 2  # rows y - t - 1 - side .. y - t - 2, y + t + 2 ..
        above, below = sides[pad - up:pad - up + h], sides[pad + down:pad + down + h]
        diff = np.minimum(above, below) - centre
        contrast = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2])
        arg[contrast >= 0.85 * best] = t  # the widest bar that keeps most of the contrast
        np.maximum(best, contrast, out=best)
    return best, arg


def _path(score: np.ndarray, slope: int = 1, bend: float = 0.0) -> np.ndarray:
    """Row per column of the left-to-right path of greatest total score, moving at most ``slope`` rows a
    column and paying ``bend`` per row it moves."""
    h, w = score.shape
    totals = np.empty((w, h), np.float32)
    totals[0] = score[:, 0]
    padded = np.full(h + 2 * slope, -np.inf, np.float32)
    for x in range(1, w):
        padded[slope:slope + h] = totals[x - 1]
        best = padded[slope:slope + h].copy()
        for d in range(1, slope + 1):  # arriving at row y from y - d or y + d
            np.maximum(best, np.maximum(padded[slope - d:slope - d + h], padded[slope + d:slope + d + h]) - bend * d,
                       out=best)
        totals[x] = best + score[:, x]
    rows = np.zeros(w, int)
    row = int(totals[-1].argmax())
    rows[-1] = row
    for x in range(w - 1, 0, -1):
        lo, hi = max(row - slope, 0), min(row + slope, h - 1)
        options = totals[x - 1, lo:hi + 1] - bend * np.abs(np.arange(lo, hi + 1) - row)
        row = lo + int(np.argmax(options))
        rows[x - 1] = row
    return rows


def _eye_openings(xy: np.ndarray, shape: tuple[int, int], grow: int) -> np.ndarray:
    """The two eye openings (lid landmarks ``xy``, rectified), grown by ``grow`` px."""
    mask = np.zeros(shape, np.uint8)
    for upper, lower in zip(UPPER_LID, LOWER_LID):
        cv2.fillPoly(mask, [np.round(xy[list(upper) + list(lower[::-1])]).astype(np.int32)], 1)
    if grow > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return mask.astype(bool)


def _present(values: np.ndarray, high: float, low: float, min_run: int, max_gap: int,
             closed: bool = False) -> np.ndarray:
    """Where along a path a bar is there: runs above ``low`` holding a value above ``high``, gaps shorter
    than ``max_gap`` closed, runs shorter than ``min_run`` dropped (``closed``: the path is a loop)."""
    on = values >= low
    n = len(values)
    if closed:
        if on.all():
            return on
        start = int(np.argmin(on))  # roll a gap to the front so no run wraps
        return np.roll(_present(np.roll(values, -start), high, low, min_run, max_gap), start)
    keep = np.zeros(n, bool)
    for a, b in _runs(on):
        keep[a:b] = (values[a:b] >= high).any()
    runs = _runs(keep)
    for (_, b), (a, _) in itertools.pairwise(runs):
        if a - b < max_gap:
            keep[b:a] = True
    for a, b in _runs(keep):
        if b - a < min_run:
            keep[a:b] = False
    return keep


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


@dataclass
class _Piece:
    """A traced part of a frame in the rectified band: path points (x, y), the bar's half width at each,
    and where along the path the bar is there; ``across`` (set by ``_Finder.measure``): how far the bar
    reaches from the path on either side along its normal (px)."""

    points: np.ndarray
    half: np.ndarray
    present: np.ndarray
    closed: bool = False
    across: np.ndarray | None = None

    def normals(self) -> np.ndarray:
        """Unit normals of the path (from its tangent over a few points)."""
        span = 3
        if self.closed:
            ahead, behind = np.roll(self.points, -span, axis=0), np.roll(self.points, span, axis=0)
        else:
            padded = np.concatenate([np.repeat(self.points[:1], span, 0), self.points,
                                     np.repeat(self.points[-1:], span, 0)])
            ahead, behind = padded[2 * span:], padded[:-2 * span]
        tangent = ahead - behind
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-6)
        return np.stack([-tangent[:, 1], tangent[:, 0]], -1)

    def draw(self, canvas: np.ndarray, margin: float = 2.0) -> None:
        """Paint the present stretches, as wide as the bar reaches across the path plus ``margin`` px each side
        (anti-aliasing)."""
        n = len(self.points)
        normal = self.normals()
        lo, hi = (self.across[:, 0] - margin, self.across[:, 1] + margin) if self.across is not None else (
            -self.half - 1 - margin, self.half + 1 + margin)
        near, far = self.points + normal * lo[:, None], self.points + normal * hi[:, None]
        for i in range(n if self.closed else n - 1):
            j = (i + 1) % n
            if self.present[i] and self.present[j]:
                quad = np.round(np.array([near[i], far[i], far[j], near[j]]) * 16).astype(np.int32)
                cv2.fillConvexPoly(canvas, quad, 1, cv2.LINE_8, shift=4)


class _Finder:
    """Traces a frame's parts in the face's eye band (upright, at the crop's scale)."""

    def __init__(self, face: AlignedFace) -> None:
        frame = FaceFrame.of(face.landmarks)
        self.unit = frame.unit
        self.rect, self.to_rect = _rectify(face.image, frame)
        inverse = cv2.invertAffineTransform(self.to_rect)
        self.xy = face.landmarks.xy @ inverse[:, :2].T + inverse[:, 2]
        self.eyes = _eye_openings(self.xy, self.rect.shape[:2], round(0.025 * self.unit))
        self.widths = range(max(2, round(MAX_HALF_WIDTH * self.unit)) + 1)

    def at(self, u: float, v: float) -> tuple[int, int]:
        """Rectified pixel (x, y) of a face-frame point."""
        return round((u - REGION[0]) * self.unit), round((v - REGION[2]) * self.unit)

    def bars(self, x0: int, x1: int, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """Contrast and half width of horizontal bars over a block of the band (seeing past its rows)."""
        pad = 2 * self.widths[-1] + 4
        top, bottom = max(0, y0 - pad), min(self.rect.shape[0], y1 + pad)
        ridge, half = _ridge(self.rect[top:bottom, x0:x1], self.widths)
        return ridge[y0 - top:y1 - top], half[y0 - top:y1 - top]

    def bridge(self) -> _Piece | None:
        """The bar across the nose between the eyes, or None: this sets the frame's contrast, colour and
        thickness for the rest."""
        (x0, y0), (x1, y1) = self.at(-0.3, BRIDGE[2]), self.at(0.3, BRIDGE[3])
        ridge, half = self.bars(x0, x1, y0, y1)
        ridge[self.eyes[y0:y1, x0:x1]] = 0
        rows = _path(np.maximum(ridge, 0))
        cols = np.arange(len(rows))
        along = ridge[rows, cols]
        middle = slice(self.at(BRIDGE[0], 0)[0] - x0, self.at(BRIDGE[1], 0)[0] - x0)
        self.contrast = float(np.median(along[middle]))
        if self.contrast < BRIDGE_CONTRAST or np.percentile(along[middle], 25) < 0.5 * BRIDGE_CONTRAST:
            return None
        thick = int(np.percentile(half[rows, cols][middle], 75))
        self.thick = thick
        self.widths = range(min(self.widths[-1], max(2, round(1.6 * thick + 1))) + 1)
        # the frame's colour: the bridge's, against the skin above and below it
        on = self.rect[rows[middle] + y0, cols[middle] + x0]
        off = np.concatenate([self.rect[np.clip(rows[middle] + y0 + d, 0, self.rect.shape[0] - 1), cols[middle] + x0]
                              for d in (-thick - 4, thick + 4)])
        color = np.median(on, axis=0)
        self.color, self.skin = color, np.median(off, axis=0)
        contrast = max(float(np.linalg.norm(self.skin - color)), 1.0)
        likeness = np.linalg.norm(self.rect - color, axis=2) / contrast
        # 1 up to halfway from the frame's colour to the skin's, 0 at the skin
        self.weight = np.clip(2 * (1 - likeness), 0, 1)
        self.weight[self.eyes] = 0
        along = along * self.weight[rows + y0, cols + x0]
        return self._piece(np.stack([cols + x0, rows + y0], -1), half[rows, cols], along)

    def rim(self, side: int) -> _Piece:
        """The rim around one eye (side -1: the image-left eye): the closed path of greatest bar contrast
        around the iris, outside the eye opening, in polar coordinates."""
        cx, cy = self.xy[IRIS_CENTERS[(side + 1) // 2]]
        turns, reach = 720, round(0.8 * self.unit)
        angle = np.linspace(0, 2 * np.pi, turns, endpoint=False, dtype=np.float32)
        radius = np.arange(reach, dtype=np.float32)
        map_x = (cx + radius[:, None] * np.cos(angle)).astype(np.float32)  # (radius, angle)
        map_y = (cy + radius[:, None] * np.sin(angle)).astype(np.float32)
        polar = cv2.remap(self.rect, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ridge, half = _ridge(polar, self.widths)
        weight = cv2.remap(self.weight, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        eye = cv2.remap(self.eyes.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR) > 0.5
        inner = np.maximum((eye * np.arange(reach)[:, None]).max(axis=0), round(0.1 * self.unit))
        score = np.maximum(ridge, 0) * weight
        score[np.arange(reach)[:, None] <= inner] = 0
        wrap = turns // 2  # trace one and a half turns; keep the middle turn, whose ends meet
        tiled = np.concatenate([score[:, -wrap:], score, score[:, :wrap]], axis=1)
        rows = _path(tiled, slope=2, bend=BEND * self.contrast)[wrap:wrap + turns]
        cols = np.arange(turns)
        points = np.stack([map_x[rows, cols], map_y[rows, cols]], -1)
        return self._piece(points, half[rows, cols], score[rows, cols], closed=True)

    def arm(self, side: int, rim: _Piece) -> _Piece:
        """The arm from a rim outward to the band's edge (it may climb steeply to the ear)."""
        outer = rim.points[rim.present, 0] if rim.present.any() else rim.points[:, 0]
        edge = round((outer.max() if side > 0 else outer.min()) - side * 0.05 * self.unit)
        x0, x1 = (edge, self.rect.shape[1]) if side > 0 else (0, edge)
        y0, y1 = self.at(0, -0.45)[1], self.at(0, 0.25)[1]
        across, half = self.bars(x0, x1, y0, y1)
        block = self.rect[y0:y1, x0:x1].transpose(1, 0, 2)
        down, down_half = (a.T for a in _ridge(block, self.widths))
        half = np.where(across >= down, half, down_half)
        score = np.maximum(np.maximum(across, down), 0) * self.weight[y0:y1, x0:x1]
        if side < 0:  # trace outward from the rim
            score, half = score[:, ::-1], half[:, ::-1]
        rows = _path(score, slope=3, bend=0.05 * self.contrast)
        cols = np.arange(len(rows))
        along, half = score[rows, cols], half[rows, cols]
        x = cols + x0 if side > 0 else x1 - 1 - cols
        return self._piece(np.stack([x, rows + y0], -1), half, along)

    def measure(self, piece: _Piece) -> None:
        """How far the bar reaches either side of its path: the run of pixels along the normal, from the path
        out, that stand apart from the skin beyond the bar (a frame's bevel and highlights included)."""
        reach = self.widths[-1] + 3
        offsets = np.arange(-reach, reach + 1, dtype=np.float32)
        normal = piece.normals()
        at = piece.points[:, None, :] + offsets[None, :, None] * normal[:, None, :]
        colors = cv2.remap(self.rect, at[..., 0].astype(np.float32), at[..., 1].astype(np.float32),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # (points, offsets, 3)
        separation = max(float(np.linalg.norm(self.skin - self.color)), 1.0)
        skins = []
        for ends in (colors[:, :2], colors[:, -2:]):  # the skin either side, unless it is more frame than skin
            skin = ends.mean(axis=1)
            framed = np.linalg.norm(skin - self.color, axis=1) < 0.5 * separation
            skins.append(np.where(framed[:, None], self.skin, skin))
        apart = np.minimum(*(np.linalg.norm(colors - skin[:, None], axis=2) for skin in skins))
        frame_like = np.linalg.norm(colors - self.color, axis=2) < apart  # nearer the frame's colour than the skin's
        bar = (apart >= max(0.25 * separation, 12.0)) & frame_like
        bar[:, reach] = True
        below = np.cumprod(bar[:, reach::-1], axis=1).sum(axis=1) - 1  # run length from the path, each way
        above = np.cumprod(bar[:, reach:], axis=1).sum(axis=1) - 1
        most = 1.5 * self.thick + 2  # a frame is about as thick all round: what runs on is a brow or hair it touches
        piece.across = np.stack([-np.minimum(below, most), np.minimum(above, most)], -1).astype(np.float32)

    def _piece(self, points: np.ndarray, half: np.ndarray, along: np.ndarray, closed: bool = False) -> _Piece:
        high, low = (share * self.contrast for share in STANDS_OUT)
        step = float(np.median(np.linalg.norm(np.diff(points, axis=0), axis=1))) or 1.0
        run, gap = round(0.06 * self.unit / step), round(0.1 * self.unit / step)
        present = _present(along, high, low, max(run, 2), max(gap, 1), closed)
        return _Piece(points.astype(np.float32), half.astype(np.float32), present, closed)

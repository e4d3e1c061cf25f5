"""Reading photos robustly into 8-bit RGB arrays, and writing images atomically."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from complexface.atomic import atomic_write
from complexface.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def content_key(*arrays: np.ndarray) -> bytes:
    """A digest of the arrays' contents and shapes: the key per-face caches use (a face's precompute, its
    detected landmarks, its identity-encoder pass) to know they are looking at the same crop again. On a hot
    path pass a sparse sample of an image (``image[::31, ::31]``) with its landmarks: a full 512 crop costs
    ~1 ms to hash."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.digest()


class ImageError(UserError, ValueError):
    """A photo that cannot be used, with a message that says what to do."""


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth or float array to 0..255 uint8."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        top = 1.0 if float(np.nanmax(array)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(array) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    top = 65535.0 if int(array.max(initial=0)) > 255 else 255.0
    return np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode (L, LA, P, RGBA, CMYK, I;16, I, F, ...) -> HxWx3 uint8 RGB.

    Transparent pixels are composited over white; 16-bit and float data are rescaled.
    """
    mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB"))
    if mode.startswith("I") or mode == "F":
        gray = _to_uint8(np.asarray(image))
        return np.repeat(gray[..., None], 3, axis=2)
    if mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a photo as an upright HxWx3 uint8 RGB array (EXIF orientation applied).

    Raises ImageError with a readable reason for missing, empty, corrupt or unsupported files.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path.name} is an empty file; replace it with a JPEG, PNG or WebP photo")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image) or image
            rgb = to_rgb(image)
    except UnidentifiedImageError:
        raise ImageError(f"{path.name} is not an image Pillow can read; use JPEG, PNG or WebP") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path.name} is corrupt or truncated ({err}); re-export or replace it") from None
    if min(rgb.shape[:2]) < 32:
        raise ImageError(f"{path.name} is only {rgb.shape[1]}x{rgb.shape[0]} px; "
                         "use a photo at least 128 px on each side")
    return np.ascontiguousarray(rgb)


def save_image(array: np.ndarray, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write an RGB/gray uint8 array atomically; the format follows the suffix."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {"compress_level": 1} if fmt == "PNG" else {}
    with atomic_write(path) as handle:
        Image.fromarray(np.ascontiguousarray(array)).save(handle, format=fmt, **options)
    return path

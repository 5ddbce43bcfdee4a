"""Pixel content: simple anatomical phantoms, lesions and burned-in text.

Phantom intensities stay below the values used for burned-in text (the top of each pixel range,
pure yellow for RGB), so a test can tell "pixels carry text" from the image content alone.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Values reserved for burned-in text.
TEXT_VALUE_12BIT = 4095
TEXT_VALUE_8BIT = 255
TEXT_RGB = (255, 255, 0)


def _grid(shape, spacing):
    """Coordinates in mm, centred on the volume: z (inferior->superior), y (anterior->posterior), x."""
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def _ellipsoid(z, y, x, c, r):
    return ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1.0


def head_phantom(shape=(176, 256, 256), spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A head in CT Hounsfield units (int16), array axes (slice, row, column).

    Rows run anterior -> posterior and slices inferior -> superior (DICOM LPS with
    ImageOrientationPatient 1\\0\\0\\0\\1\\0 and ascending z), so the face - nose and lips protruding
    anteriorly from the skin surface, eyes behind them - sits at low row indices in the lower half of
    the stack, where a defacing step must find and remove it.
    """
    z, y, x = _grid(shape, spacing)
    # Fit the head to the field of view so small test volumes still contain a face.
    ext = [max((n - 1) * s / 2, s) for n, s in zip(shape, spacing)]
    hz, hy, hx = ext[0] * 0.95, ext[1] * 0.72, ext[2] * 0.62
    out = np.full(shape, -1000, dtype=np.int16)
    head = _ellipsoid(z, y, x, (0, 0.05 * hy, 0), (hz, hy, hx))
    out[head] = 40                                                     # skin and soft tissue
    skull = _ellipsoid(z, y, x, (0.15 * hz, 0.08 * hy, 0), (0.82 * hz, 0.86 * hy, 0.88 * hx))
    out[skull] = 1000
    brain = _ellipsoid(z, y, x, (0.18 * hz, 0.08 * hy, 0), (0.74 * hz, 0.79 * hy, 0.80 * hx))
    out[brain] = 35
    ventricles = _ellipsoid(z, y, x, (0.25 * hz, 0.1 * hy, 0), (0.2 * hz, 0.25 * hy, 0.12 * hx))
    out[ventricles] = 5
    front = -0.95 * hy + 0.05 * hy                                      # anterior skin surface (y)
    for side in (-1, 1):                                                # eyes, just behind the skin
        out[_ellipsoid(z, y, x, (-0.05 * hz, front + 0.18 * hy, side * 0.35 * hx), (0.09 * hz, 0.1 * hy, 0.14 * hx))] = 20
    nose = _ellipsoid(z, y, x, (-0.3 * hz, front - 0.02 * hy, 0), (0.2 * hz, 0.16 * hy, 0.1 * hx))
    out[nose & (out == -1000)] = 40
    for dz in (-0.52, -0.6):                                            # upper and lower lip
        lip = _ellipsoid(z, y, x, (dz * hz, front + 0.02 * hy, 0), (0.04 * hz, 0.08 * hy, 0.22 * hx))
        out[lip & (out == -1000)] = 45
    return out


def hu_to_mr(hu: np.ndarray) -> np.ndarray:
    """Map phantom tissue classes to plausible T1-like MR intensities (uint16, < 4095)."""
    lut = {-1000: 0, 40: 900, 45: 950, 1000: 120, 35: 600, 5: 180, 20: 300}
    out = np.zeros(hu.shape, dtype=np.uint16)
    for k, v in lut.items():
        out[hu == k] = v
    return out


def body_phantom(shape, spacing) -> np.ndarray:
    """Chest/abdomen CT in HU: body, lungs, heart, spine (extruded along z with slight taper)."""
    z, y, x = _grid(shape, spacing)
    ext = [max((n - 1) * s / 2, s) for n, s in zip(shape, spacing)]
    hy, hx = ext[1] * 0.7, ext[2] * 0.9
    out = np.full(shape, -1000, dtype=np.int16)
    zz = np.broadcast_to(z, shape)
    body = ((y / hy) ** 2 + (x / hx) ** 2 <= 1.0 + 0.0 * zz)
    out[body] = 30
    for side in (-1, 1):
        lung = ((y / (0.7 * hy)) ** 2 + ((x - side * 0.45 * hx) / (0.35 * hx)) ** 2 <= 1.0 + 0.0 * zz)
        out[lung] = -850
    heart = ((y + 0.15 * hy) / (0.4 * hy)) ** 2 + ((x + 0.1 * hx) / (0.3 * hx)) ** 2 <= 1.0 + 0.0 * zz
    out[heart] = 50
    spine = ((y - 0.7 * hy) / (0.15 * hy)) ** 2 + (x / (0.12 * hx)) ** 2 <= 1.0 + 0.0 * zz
    out[spine] = 700
    return out


def xray(rows: int, cols: int, variant: int) -> np.ndarray:
    """A chest/skeletal radiograph-like image, uint16 with max < 4000."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rows / 2, cols / 2
    img = 600 + 1800 * np.exp(-(((yy - cy) / (0.45 * rows)) ** 2 + ((xx - cx) / (0.4 * cols)) ** 2))
    for side in (-1, 1):
        lung = ((yy - cy) / (0.32 * rows)) ** 2 + ((xx - cx - side * 0.2 * cols) / (0.14 * cols)) ** 2 <= 1
        img[lung] -= 500
    img += (variant % 7) * 20
    return np.clip(img, 0, 3900).astype(np.uint16)


def fundus(rows: int, cols: int, variant: int) -> np.ndarray:
    """An RGB fundus photograph-like image; green never reaches 255, so TEXT_RGB is unambiguous."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    r = np.hypot(yy - rows / 2, xx - cols / 2) / (0.48 * min(rows, cols))
    img = np.zeros((rows, cols, 3), dtype=np.float32)
    inside = r <= 1
    img[..., 0] = np.where(inside, 200 - 60 * r, 0)
    img[..., 1] = np.where(inside, 90 - 40 * r, 0)
    img[..., 2] = np.where(inside, 40 - 20 * r, 0)
    disc = np.hypot(yy - rows / 2, xx - cols * (0.65 if variant % 2 else 0.35)) <= 0.08 * min(rows, cols)
    img[disc] = (240, 220, 160)
    return np.clip(img, 0, 240).astype(np.uint8)


def speckle(frames: int, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Ultrasound/OCT-like frames (uint8, < 200): a lumen ring with speckle."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    r = np.hypot(yy - rows / 2, xx - cols / 2) / (0.5 * min(rows, cols))
    ring = np.exp(-((r - 0.45) / 0.12) ** 2)
    noise = rng.random((frames, rows, cols), dtype=np.float32)
    return np.clip(180 * ring * (0.5 + 0.5 * noise) + 10 * noise, 0, 199).astype(np.uint8)


@lru_cache(maxsize=1)
def _font():
    # Pillow's bundled default font: always available, never downloaded.
    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # older Pillow without sizes
        return ImageFont.load_default()


def text_mask(rows: int, cols: int, lines: list[str], origin=(2, 2)) -> np.ndarray:
    """Boolean mask of `lines` rendered top-left, clipped to the image."""
    canvas = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(canvas)
    x, y = origin
    for line in lines:
        draw.text((x, y), line, fill=255, font=_font())
        y += 12
    return np.asarray(canvas) > 127


def burn_text(pixels: np.ndarray, lines: list[str], value) -> np.ndarray:
    """Render text into a 2D/3D (frames) grey or RGB array in place; returns it for chaining."""
    if pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] == 3 and pixels.dtype == np.uint8 and value == TEXT_RGB):
        rows, cols = pixels.shape[:2]
        mask = text_mask(rows, cols, lines)
        if not mask.any():          # tiny images: make sure at least the first glyph pixel lands
            mask[0, 0] = True
        pixels[mask] = value
    else:
        rows, cols = pixels.shape[1:3]
        mask = text_mask(rows, cols, lines)
        if not mask.any():
            mask[0, 0] = True
        pixels[:, mask] = value
    return pixels


def lesion_disk(rows: int, cols: int, center_rc, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    return (yy - center_rc[0]) ** 2 + (xx - center_rc[1]) ** 2 <= radius ** 2


def circle_points(center_rc, radius: float, n: int = 12) -> list[tuple[float, float]]:
    """Closed polygon vertices (row, col) around a lesion, for contours and polylines."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(round(float(center_rc[0] + radius * np.sin(a)), 2), round(float(center_rc[1] + radius * np.cos(a)), 2))
            for a in t]

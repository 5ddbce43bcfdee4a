"""Whole-slide images as Aperio-style tiled TIFF pyramids with label and macro pages.

The label page carries the patient's name and chart number in pixels (the slide label a scanner
photographs), which is why a de-identifier must drop or blank it; ImageDescription says "label" /
"macro" the way SVS files do. No DICOM: pathology teams export vendor files.
"""

from __future__ import annotations

import numpy as np
import tifffile

from .context import CaseContext
from .phantoms import text_mask

APERIO = "Aperio Image Library v12.0.15"


def _tissue(rows: int, cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    blob = np.hypot((yy - rows / 2) / (0.4 * rows), (xx - cols / 2) / (0.35 * cols)) <= 1
    img = np.full((rows, cols, 3), 242, dtype=np.uint8)
    noise = rng.integers(0, 40, size=(rows, cols), dtype=np.uint8)
    img[blob] = np.stack([200 - noise, 120 - noise // 2, 180 - noise], axis=-1)[blob]
    return img


def label_image(rows: int, cols: int, lines: list[str]) -> np.ndarray:
    img = np.full((rows, cols, 3), 255, dtype=np.uint8)
    mask = text_mask(rows, cols, lines)
    if not mask.any():
        mask[0, 0] = True
    img[mask] = 0
    return img


def write_wsi(ctx: CaseContext) -> None:
    p = ctx.patient
    tiny = ctx.tiny
    slide = f"S{ctx.rng.randrange(10, 20)}-{ctx.rng.randrange(10000, 99999)}"
    ext = ".ndpi" if ctx.rng.random() < 0.7 else ctx.rng.choice([".svs", ".tif"])
    if ctx.rng.random() < 0.5:
        name = f"{p.chart_no}_{slide}{ext}"
        ctx.plant("chart_no", p.chart_no, "path")
    else:
        name = f"{ctx.case_id}_{slide}{ext}"
    rel = f"images/{ctx.case_folder}/{name}"
    path = ctx.batch_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 8 if tiny else 1024
    base = _tissue(size, size, ctx.rng.randrange(2 ** 32))
    lines = [p.name_text, p.chart_no, slide]
    ctx.plant("name_text", p.name_text, "wsi:label")
    ctx.plant("chart_no", p.chart_no, "wsi:label")
    label = label_image(8 if tiny else 120, 8 if tiny else 240, lines)
    macro = np.concatenate([label, _tissue(label.shape[0], label.shape[1] * 2, 7)], axis=1)
    # Scanner descriptions often echo the file name, i.e. the chart number.
    desc = (f"{APERIO}\n{size}x{size} [0,0 {size}x{size}] (256x256) RAW|AppMag = 20|MPP = 0.4990"
            f"|Filename = {p.chart_no}_{slide}|Date = {ctx.studies[0].date:%m/%d/%y}"
            # Not an Aperio key: the only link from a slide to its cases.csv study (EXPORT_FORMAT is silent).
            f"|StudyInstanceUID = {ctx.studies[0].uid}")
    ctx.plant("chart_no", p.chart_no, "wsi:ImageDescription")
    tile = None if tiny else (256, 256)
    # Real NDPI is classic TIFF with 64-bit IFD offsets, which readers (tifffile, OpenSlide) assume from the
    # .ndpi ending; tifffile cannot write that, so .ndpi files are BigTIFF, which every reader opens as such.
    with tifffile.TiffWriter(path, bigtiff=ext == ".ndpi") as tif:
        tif.write(base, photometric="rgb", tile=tile, description=desc, metadata=None, software=False)
        if not tiny:
            thumb = base[::8, ::8]
            tif.write(thumb, photometric="rgb", description=f"{APERIO}\n{size}x{size} -> {thumb.shape[1]}x{thumb.shape[0]}",
                      metadata=None, software=False)
            level = base
            for _ in range(2):
                level = level[::2, ::2]
                tif.write(level, photometric="rgb", tile=(256, 256) if level.shape[0] >= 256 else (128, 128),
                          subfiletype=0, description=f"{APERIO}\n{size}x{size} -> {level.shape[1]}x{level.shape[0]}",
                          metadata=None, software=False)
        tif.write(label, photometric="rgb", subfiletype=1,
                  description=f"{APERIO}\nlabel {label.shape[1]}x{label.shape[0]}", metadata=None, software=False)
        tif.write(macro, photometric="rgb", subfiletype=9,
                  description=f"{APERIO}\nmacro {macro.shape[1]}x{macro.shape[0]}", metadata=None, software=False)
    ctx.record(rel, "wsi", None, burned_in=True)

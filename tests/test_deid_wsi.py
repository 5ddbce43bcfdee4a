"""Whole-slide images: label and macro pages and identifying metadata are gone, the pyramid stays."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from medlake.deid.wsi import WsiError, strip_label_and_macro
from medlake.synth.wsi import write_wsi

NAME = "CHEN Mei-Ling"
CHART = "A7730219"


def _slide(tmp_path: Path, seed: int) -> Path:
    """A slide from the synthetic hospital's own writer; the context carries just what it reads."""
    written = []
    ctx = SimpleNamespace(
        patient=SimpleNamespace(name_text=NAME, chart_no=CHART), tiny=False, rng=random.Random(seed),
        case_folder="case01", case_id="C0001", batch_dir=tmp_path / "batch",
        studies=[SimpleNamespace(date=dt.date(2019, 5, 4), uid="1.2.826.0.1.3680043.8.498.12345")],
        plant=lambda *a, **k: None, record=lambda rel, *a, **k: written.append(rel))
    write_wsi(ctx)
    return ctx.batch_dir / written[0]


@pytest.mark.parametrize("seed", [1, 5, 11])
def test_strip_label_and_macro(tmp_path, seed):
    src = _slide(tmp_path, seed)
    raw_in = src.read_bytes()
    assert CHART.encode() in raw_in
    dst = tmp_path / "out" / "slide.tif"
    res = strip_label_and_macro(src, dst)
    assert sorted(res.dropped) == ["label", "macro"]
    with tifffile.TiffFile(src) as a, tifffile.TiffFile(dst) as b:
        kept = [p for p in a.pages if not any(w in (p.description or "") for w in ("label", "macro"))]
        assert len(b.pages) == len(kept) == res.pages_out
        for pa, pb in zip(kept, b.pages):
            assert pb.shape == pa.shape and pb.is_tiled == pa.is_tiled
            assert "label" not in (pb.description or "") and "macro" not in (pb.description or "")
        assert np.array_equal(a.pages[0].asarray(), b.pages[0].asarray())
        assert np.array_equal(kept[-1].asarray(), b.pages[-1].asarray())
        for p in b.pages:
            assert not {306, 305, 315, 316} & set(p.tags.keys())
        assert b.pages[0].description.startswith("Aperio")
        assert "MPP = 0.4990" in b.pages[0].description
    raw = dst.read_bytes()
    for secret in (NAME, CHART, "2019", "05/04/19", "StudyInstanceUID", "1.2.826.0.1.3680043"):
        assert secret.encode() not in raw, secret


def test_plain_tiff_with_datetime_and_software(tmp_path):
    """A generic pyramid: tags a scanner adds are dropped, deflate tiles are copied, not re-encoded."""
    src = tmp_path / "plain.tiff"
    base = np.random.default_rng(0).integers(0, 255, (512, 768, 3), dtype=np.uint8)
    with tifffile.TiffWriter(src) as tw:
        tw.write(base, photometric="rgb", tile=(256, 256), compression="zlib", description="scanned by " + NAME,
                 datetime="2019:05:04 10:11:12", software="ScannerSoft 1.0",
                 extratags=[(315, "s", 0, "Dr " + NAME, False), (316, "s", 0, "HOST-" + CHART, False)])
        tw.write(base[::2, ::2], photometric="rgb", tile=(128, 128), compression="zlib", subfiletype=1)
        tw.write(np.full((100, 300, 3), 200, np.uint8), photometric="rgb", description="macro image")
    res = strip_label_and_macro(src, tmp_path / "o.tiff")
    assert res.dropped == ["macro"] and res.levels == [(768, 512), (384, 256)]
    with tifffile.TiffFile(tmp_path / "o.tiff") as b:
        assert np.array_equal(b.pages[0].asarray(), base)
        assert b.pages[0].compression == 8
    raw = (tmp_path / "o.tiff").read_bytes()
    for secret in (NAME, CHART, "2019:05:04", "ScannerSoft"):
        assert secret.encode() not in raw, secret


def test_not_a_tiff(tmp_path):
    bad = tmp_path / "bad.svs"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(WsiError) as e:
        strip_label_and_macro(bad, tmp_path / "o.svs")
    assert e.value.reason == "unreadable_wsi"

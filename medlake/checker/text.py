"""Scan text files (JSON, CSV/TSV, Markdown, HTML, XML, YAML, plain text), the text chunks of PNG
and JPEG images, ZIP members (xlsx label sheets are ZIP files of XML) and, for any other binary
file, its readable runs of text."""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import re
import struct
import zipfile
import zlib

from medlake.checker.sink import Sink, text_runs

TEXT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".geojson", ".csv", ".tsv", ".md", ".markdown", ".html", ".htm",
                 ".xml", ".txt", ".text", ".yaml", ".yml", ".log", ".ini", ".cfg", ".toml", ".rst", ".sha256",
                 ".md5", ".tex", ".bib", ".cff", ".svg")
BINARY_LIMIT = 256 << 20   # bytes of an unknown binary file read for text runs


def decode(data: bytes) -> str:
    for enc in ("utf-8-sig", "cp950"):           # Taiwanese exports are sometimes Big5
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _pointer_escape(k: str) -> str:
    return k.replace("~", "~0").replace("/", "~1")


def _walk_pointer(sink: Sink, ptr: str, obj, loc_prefix: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            ks = str(k)
            shown = sink.safe(ks, "key")
            p = f"{ptr}/{_pointer_escape(shown)}"
            if shown != ks:
                sink.check(loc_prefix + p, ks)
            _walk_pointer(sink, p, v, loc_prefix)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _walk_pointer(sink, f"{ptr}/{i}", v, loc_prefix)
    elif obj is None or isinstance(obj, bool):
        return
    else:
        sink.check(loc_prefix + (ptr or "/"), obj)


def _lines(sink: Sink, text: str, prefix: str = "", markup: bool = False) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        loc = f"{prefix}line {n}"
        m = _CHECKSUM_LINE.fullmatch(line)
        if m:  # `sha256sum` output: the hash and the path are separate values
            sink.check(f"{loc} hash", m.group(1))
            sink.check(f"{loc} path", m.group(2))
            continue
        found = sink.check(loc, line)
        if markup and not found and ("&" in line or "%" in line):
            sink.check(loc, html.unescape(line))


def _csv(sink: Sink, text: str, delimiter: str, prefix: str = "") -> None:
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] = []
    for r, row in enumerate(rows):
        if r == 0:
            for j, cell in enumerate(row):
                shown = sink.safe(cell, "column")
                if shown != cell:
                    sink.check(f"{prefix}header[{j}]", cell)
                header.append(shown or f"column {j}")
            continue
        for j, cell in enumerate(row):
            if cell:
                col = header[j] if j < len(header) else f"column {j}"
                sink.check(f"{prefix}{col}[{r - 1}]", cell)


def scan_text_bytes(sink: Sink, name: str, data: bytes, prefix: str = "") -> None:
    """Dispatch on the file name's ending."""
    low = name.lower()
    text = decode(data)
    if low.endswith((".json", ".geojson")):
        try:
            _walk_pointer(sink, "", json.loads(text), prefix)
            return
        except ValueError:
            pass
    if low.endswith((".jsonl", ".ndjson", ".json")):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                _walk_pointer(sink, "", json.loads(line), f"{prefix}line {n}:")
            except ValueError:
                sink.check(f"{prefix}line {n}", line)
        return
    if low.endswith((".csv", ".tsv")):
        try:
            _csv(sink, text, "\t" if low.endswith(".tsv") else ",", prefix)
            return
        except csv.Error:
            pass
    _lines(sink, text, prefix, markup=low.endswith((".html", ".htm", ".xml", ".svg", ".md", ".markdown")))


_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64})  (.+)")


def scan_text_into(path: str, sink: Sink) -> None:
    with open(path, "rb") as f:
        data = f.read()
    # Values are collected and searched together (Sink.batch): a manifest of 100,000 lines is a
    # few searches, not 100,000.
    sink.batch()
    try:
        scan_text_bytes(sink, path, data)
    finally:
        sink.flush()


# --- images: text chunks only ------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scan_png_into(path: str, sink: Sink) -> None:
    with open(path, "rb") as f:
        data = f.read()
    pos = 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        kind = ctype.decode("latin-1")
        if kind == "IEND":
            break
        if kind not in ("tEXt", "zTXt", "iTXt", "eXIf"):
            continue
        if kind == "eXIf":
            sink.check_bytes("png:eXIf", body)
            continue
        key, _, rest = body.partition(b"\0")
        keyword = key.decode("latin-1")
        shown = sink.safe(keyword, "keyword")
        loc = f"png:{kind}[{shown}]"
        if shown != keyword:
            sink.check(loc + ".keyword", keyword)
        try:
            if kind == "tEXt":
                texts = [rest.decode("latin-1")]
            elif kind == "zTXt":
                texts = [zlib.decompress(rest[1:]).decode("latin-1")]
            else:
                flag, _method = rest[0], rest[1]
                lang, _, rest2 = rest[2:].partition(b"\0")
                translated, _, txt = rest2.partition(b"\0")
                if flag:
                    txt = zlib.decompress(txt)
                texts = [lang.decode("utf-8", "replace"), translated.decode("utf-8", "replace"),
                         txt.decode("utf-8", "replace")]
        except Exception:
            sink.check_bytes(loc, rest)
            continue
        for t in texts:
            for n, line in enumerate(t.splitlines() or [t], 1):
                sink.check(loc if n == 1 else f"{loc} line {n}", line)


def scan_jpeg_into(path: str, sink: Sink) -> None:
    """COM and APPn segments (EXIF, XMP, ...): the places a JPEG keeps text."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA:          # start of scan: entropy-coded data follows
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        body = data[pos + 4:pos + 2 + length]
        if marker == 0xFE:
            sink.check_bytes("jpeg:COM", body)
        elif 0xE0 <= marker <= 0xEF:
            sink.check_bytes(f"jpeg:APP{marker - 0xE0}", body)
        pos += 2 + length


# --- containers and other binaries ---------------------------------------------------------------

def scan_zip_into(path: str, sink: Sink) -> None:
    with zipfile.ZipFile(path) as z:
        for i, info in enumerate(z.infolist()):
            shown = sink.safe(info.filename, "member")
            if shown != info.filename:
                sink.check(f"zip:{shown}:name", info.filename)
            if info.is_dir():
                continue
            with z.open(info) as f:
                data = f.read(BINARY_LIMIT)
            low = info.filename.lower()
            if low.endswith(TEXT_SUFFIXES + (".rels", ".vml")):
                scan_text_bytes(sink, low, data, prefix=f"zip:{shown}:")
            else:
                for run in text_runs(data):
                    sink.check(f"zip:{shown}", run)


def scan_binary_into(path: str, sink: Sink) -> None:
    """Readable text runs of any other file (TIFF descriptions, NIfTI descrip, PDF metadata...);
    gzip files are decompressed first."""
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        offset = 0
        tail = b""
        while offset < BINARY_LIMIT:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            # keep a small overlap so a run split across chunks is still seen whole
            buf = tail + chunk
            for run in text_runs(buf):
                sink.check("binary text", run)
            tail = buf[-64:]
            offset += len(chunk)

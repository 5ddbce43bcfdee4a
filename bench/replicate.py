"""Seed table 5 at any scale, fast: one synthetic template case per (dataset, part, status), cloned by
byte-patching.

medlake.synth writes a few thousand cases a minute; 520,874 cases would take hours. Here each template
case (tiny images: one object per case) is written once by medlake.synth, then cut at every identifier
it carries (UIDs, chart number, names, national ID, accession numbers, case id; in file contents and
in paths) so that a clone is one `b"".join` per file with same-length values that embed a counter.
Same length keeps every DICOM element length, TIFF tag count and CSV row valid without re-encoding.

Not cloned from synth: a sample of lung-ct cases (0.1%, at least one) becomes real-size CT, 50 slices of
512x512, so the run also moves real bytes; cases.csv says consent class A for everyone and
<team>/_consent/fullscale.csv consents every patient, so releases are not empty.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

from medlake.program.registry import Registry
from medlake.synth.generate import SynthSpec, _batch_name, generate
from medlake.synth.identities import GIVEN, _ID_LETTERS
from medlake.synth.status import possible_statuses

SEED_TABLE5 = Path("/work/shared/seed/table5_datasets_2019.csv")
STATUSES = ("image_only", "partial", "full")
BATCH_CASES = 50_000
REAL_FRACTION = 0.001          # of lung-ct's cases, as 512x512x50 CT
REAL_SLICES, REAL_ROWS = 50, 512
COUNTER = 7                    # counter digits inside UIDs and accession numbers (clones < 10**7)
# Synth UIDs are 2.25.<128-bit integer>: ~38 digits, so the counter's 7 never reach the component's
# first digit (no component may start with 0). The look-behind keeps fixed roots like 1.2.840... out.
UID_RE = rb"(?<![0-9])2\.25\.[0-9]{20,}"


def table5_counts(scale: float, path: Path = SEED_TABLE5) -> dict[tuple[str, str, str], int]:
    """(dataset, part, status) -> cases at this scale; a non-empty cell keeps at least one case so every
    template runs at every scale (1.0 gives table 5 exactly)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(f):
            for s in STATUSES:
                n = int(r[s] or 0)
                if n:
                    out[(r["dataset_id"], r["sharing"], s)] = max(1, math.floor(n * scale + 0.5))
    return out


class Cut:
    """A byte string cut at its identifier occurrences: literal pieces and the tokens between them."""

    __slots__ = ("lits", "slots")

    def __init__(self, data: bytes, rx: re.Pattern):
        self.lits, self.slots, pos = [], [], 0
        for m in rx.finditer(data):
            self.lits.append(data[pos:m.start()])
            self.slots.append(m.group())
            pos = m.end()
        self.lits.append(data[pos:])

    def render(self, values: dict[bytes, bytes]) -> bytes:
        if not self.slots:
            return self.lits[0]
        out = [b""] * (2 * len(self.slots) + 1)
        out[::2] = self.lits
        out[1::2] = [values[s] for s in self.slots]
        return b"".join(out)


def _letters(n: int, width: int) -> str:
    s = ""
    for _ in range(width):
        n, r = divmod(n, 26)
        s = chr(65 + r) + s
    return s


def _national_id(old: str, g: int) -> str:
    """Same letter and sex digit, the counter in the 7 middle digits, a valid check digit (the checker
    recognises national IDs by their checksum, so an invalid one would be a different kind of value)."""
    body = old[:2] + f"{g % 10**7:07d}"
    code = _ID_LETTERS[body[0]]
    total = code // 10 + (code % 10) * 9 + sum(int(d) * w for d, w in zip(body[1:], range(8, 0, -1)))
    return body + str((10 - total % 10) % 10)


@dataclass
class Template:
    dataset: str
    team: str
    part: str
    status: str
    files: list[tuple[Cut, object]] = field(default_factory=list)   # (path, Cut | {member: Cut} for xlsx)
    sheets: dict[str, tuple[bytes, Cut]] = field(default_factory=dict)  # batch label sheet -> (header, rows)
    cases_row: Cut | None = None
    patient: Cut | None = None
    kinds: dict[bytes, tuple] = field(default_factory=dict)          # token -> how to make a clone's value
    real_size: bool = False

    def values(self, g: int, case_no: int, case_width: int) -> dict[bytes, bytes]:
        """Every token's value in clone g (unique over the run) that is case number case_no of its dataset."""
        out = {}
        for tok, (kind, arg) in self.kinds.items():
            if kind == "uid" or kind == "acc":
                out[tok] = arg + b"%07d" % g
            elif kind == "chart":
                out[tok] = b"9%07d" % g
            elif kind == "case":
                out[tok] = arg[:-case_width] + b"%0*d" % (case_width, case_no)
            elif kind == "nid":
                out[tok] = _national_id(arg, g).encode()
            elif kind == "name":        # the romanised name in its three spellings (^, space, _)
                sep, letters = arg
                new = list(letters)
                pos = [i for i, c in enumerate(letters) if c.isalpha()][-6:]
                for i, c in zip(pos, _letters(g, len(pos))):
                    new[i] = c
                out[tok] = "".join(new).replace("^", sep).encode()
            elif kind == "zh":          # 吳秀柏 / 吳^秀柏: keep the surname, given name from the counter
                sep, name = arg
                out[tok] = (name[0] + sep + GIVEN[g % 36][0] + GIVEN[g // 36 % 36][0]).encode()
        return out


def _case_tokens(truth: dict, case: dict) -> dict[bytes, tuple]:
    """The literal identifiers of one template case (UIDs are found by pattern)."""
    kinds: dict[bytes, tuple] = {}
    cid = case["case_id"]
    kinds[cid.encode()] = ("case", cid.encode())   # the counter's width is set per dataset at clone time
    for ident in truth["identifiers"]:
        if ident["patient_id"] != case["patient_id"] or ident["team"] != case["team"]:
            continue
        v, k = ident["value"], ident["kind"]
        if k == "chart_no":
            kinds[v.encode()] = ("chart", None)
        elif k == "accession_number":
            kinds[v.encode()] = ("acc", v[:-COUNTER].encode())
        elif k == "national_id":
            kinds[v.encode()] = ("nid", v)
        elif k in ("name_dicom", "name_text", "name_file"):   # SURNAME^GIVEN-NAME, or with ' ' / '_'
            dicom = v.replace({"name_dicom": "^", "name_text": " ", "name_file": "_"}[k], "^", 1)
            for sep in ("^", " ", "_"):
                kinds[dicom.replace("^", sep).encode()] = ("name", (sep, dicom))
        elif k in ("name_zh", "name_pn_ideographic") and len(v.replace("^", "")) == 3:
            zh = v.replace("^", "")
            kinds[zh.encode()] = ("zh", ("", zh))
            kinds[(zh[0] + "^" + zh[1:]).encode()] = ("zh", ("^", zh))
    return kinds


def _regex(literals) -> re.Pattern:
    alts = [re.escape(t) for t in sorted(literals, key=len, reverse=True)]
    return re.compile(b"|".join([UID_RE, *alts]))


def _real_size(files: dict[str, bytes]) -> dict[str, bytes]:
    """The tiny one-slice CT of a template made 512x512x50: same headers and identifiers, new slices."""
    (rel, data), = files.items()
    ds = pydicom.dcmread(io.BytesIO(data))
    sop = ds.SOPInstanceUID
    folder = rel.rsplit("/", 1)[0]
    rng = np.random.default_rng(15)
    out = {}
    for k in range(REAL_SLICES):
        # A distinct SOP UID per slice, same length, changed left of the clone counter's digits.
        uid = sop[:-COUNTER - 2] + f"{k + 10:02d}" + sop[-COUNTER:]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-175.0, -175.0, -100.0 + 2.5 * k]
        ds.SliceLocation = -100.0 + 2.5 * k
        ds.Rows = ds.Columns = REAL_ROWS
        ds.PixelData = rng.integers(0, 2000, (REAL_ROWS, REAL_ROWS), dtype=np.uint16).tobytes()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out[f"{folder}/IM{k + 1:04d}.dcm"] = buf.getvalue()
    return out


def build_templates(scratch: Path, registry: Registry, cells: dict[tuple[str, str, str], int],
                    real_size: bool) -> dict[tuple[str, str, str], Template]:
    """Synthesise one case per cell with medlake.synth and cut it; a 'real' lung-ct template if asked."""
    shutil.rmtree(scratch, ignore_errors=True)
    wanted: dict[str, dict] = {}
    for (d, part, status) in cells:
        wanted.setdefault(d, {}).setdefault(part, {})[status] = 1
    out = {}
    for d, counts in wanted.items():
        root = scratch / d
        rep = generate(root, registry, SynthSpec(datasets=(d,), status_counts={d: counts}, tiny=True,
                                                 consent=False, applications=False))
        truth = json.loads(rep.truth_path.read_text(encoding="utf-8"))
        for case in truth["cases"]:
            bdir = root / case["team"] / d / case["batch"]
            kinds = _case_tokens(truth, case)
            rx = _regex(kinds)
            cell = (d, case["part"], case["expected_status"])
            mine = [o for o in truth["objects"] if o["case_id"] == case["case_id"]]
            contents = {o["path"]: (bdir / o["path"]).read_bytes() for o in mine}
            variants = [(False, contents)]
            if real_size and cell == ("lung-ct", "shared", "image_only"):
                variants.append((True, _real_size(contents)))
            for real, files in variants:
                tv = Template(*cell[:1], case["team"], *cell[1:], real_size=real)
                for rel, data in files.items():
                    body = Cut(data, rx)
                    if rel.endswith(".xlsx"):   # a zip: cut each member, re-zip per clone
                        z = zipfile.ZipFile(io.BytesIO(data))
                        body = {name: Cut(z.read(name), rx) for name in z.namelist()}
                    tv.files.append((Cut(rel.encode(), rx), body))
                for o in truth["objects"]:   # batch-wide label sheets: this case's rows
                    if o["case_id"] is None and case["case_id"] in o["case_ids"]:
                        lines = (bdir / o["path"]).read_bytes().splitlines(keepends=True)
                        keys = [case["case_id"].encode(), *(u.encode() for u in case["study_instance_uids"])]
                        mine_rows = b"".join(ln for ln in lines[1:] if any(k in ln for k in keys))
                        sheet = o["path"].replace(case["batch"], "{batch}")
                        tv.sheets[sheet] = (lines[0], Cut(mine_rows, rx))
                rows = list(csv.DictReader(io.StringIO((bdir / "cases.csv").read_bytes().decode("utf-8-sig"))))
                row = next(r for r in rows if r["case_id"] == case["case_id"])
                row["consent_class"] = "A"
                tv.cases_row = Cut(_csv_line(row), rx)
                tv.patient = Cut(case["patient_id"].encode(), rx)
                tv.kinds = dict(kinds)
                for cut in _all_cuts(tv):
                    for tok in cut.slots:
                        if tok not in tv.kinds:      # a UID
                            assert len(tok.rsplit(b".", 1)[1]) > COUNTER + 2, tok
                            tv.kinds[tok] = ("uid", tok[:-COUNTER])
                out[cell + (("real",) if real else ())] = tv
    return out


def _all_cuts(t: Template):
    for path, body in t.files:
        yield path
        yield from (body.values() if isinstance(body, dict) else [body])
    yield from (cut for _, cut in t.sheets.values())
    yield t.cases_row
    yield t.patient


CASES_COLUMNS = ["case_id", "patient_id", "study_instance_uids", "label_source", "shareable", "consent_class",
                 "note"]


def _csv_line(row: dict) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerow([row.get(c, "") for c in CASES_COLUMNS])
    return buf.getvalue().encode("utf-8")


def _spread(groups: list[tuple[object, int]]) -> list[object]:
    """Every group's items evenly over the sequence, so each batch gets the dataset's mix."""
    keyed = [((j + 0.5) / n, i) for i, (_, n) in enumerate(groups) for j in range(n)]
    keyed.sort()
    return [groups[i][0] for _, i in keyed]


@dataclass
class Written:
    cases: int = 0
    files: int = 0
    bytes: int = 0
    batches: int = 0
    real_size_cases: int = 0
    by_cell: dict = field(default_factory=dict)
    remapped: dict = field(default_factory=dict)


def replicate(landing: Path, scratch: Path, registry: Registry, scale: float, batch_cases: int = BATCH_CASES,
              real_fraction: float = REAL_FRACTION) -> Written:
    cells = table5_counts(scale)
    w = Written()
    # Table 5 cells the registry makes impossible (ccta requires one kind, so it has no partial case):
    # counted as the dataset's full cases, and reported.
    for (d, part, status), n in list(cells.items()):
        if status not in possible_statuses(registry.dataset(d)):
            del cells[(d, part, status)]
            cells[(d, part, "full")] = cells.get((d, part, "full"), 0) + n
            w.remapped[f"{d}/{part}/{status}"] = {"cases": n, "as": "full"}
    templates = build_templates(scratch, registry, cells, real_fraction > 0)
    groups_by_ds: dict[str, list] = {}
    for key, n in cells.items():
        d = key[0]
        if real_fraction and key == ("lung-ct", "shared", "image_only"):
            total = sum(v for k, v in cells.items() if k[0] == "lung-ct")
            real = min(n, max(1, round(total * real_fraction)))
            groups_by_ds.setdefault(d, []).append((templates[key + ("real",)], real))
            n -= real
            w.real_size_cases = real
        if n:
            groups_by_ds.setdefault(d, []).append((templates[key], n))
        w.by_cell["/".join(key)] = cells[key]
    g = 0
    made: set[str] = set()
    patients: dict[str, list[bytes]] = {}
    for d, groups in groups_by_ds.items():
        order = _spread(groups)
        width = max(5, len(str(len(order))))
        team = groups[0][0].team
        for b0 in range(0, len(order), batch_cases):
            batch = _batch_name(b0 // batch_cases)
            bdir = landing / team / d / batch
            sheets: dict[str, list[bytes]] = {}
            made.clear()      # folders are per batch: the set stays small at 50,000 cases
            rows = [b"\xef\xbb\xbf" + ",".join(CASES_COLUMNS).encode() + b"\n"]
            for k, t in enumerate(order[b0:b0 + batch_cases], start=b0 + 1):
                g += 1
                v = t.values(g, k, width)
                for path, body in t.files:
                    p = bdir / path.render(v).decode()
                    parent = str(p.parent)
                    if parent not in made:
                        os.makedirs(parent, exist_ok=True)
                        made.add(parent)
                    data = _xlsx(body, v) if isinstance(body, dict) else body.render(v)
                    with open(p, "wb") as fh:
                        fh.write(data)
                    w.files += 1
                    w.bytes += len(data)
                for sheet, (header, cut) in t.sheets.items():
                    sheets.setdefault(sheet, [header]).append(cut.render(v))
                rows.append(t.cases_row.render(v))
                patients.setdefault(team, []).append(t.patient.render(v))
                w.cases += 1
            for sheet, lines in sheets.items():
                w.bytes += _write(bdir / sheet.format(batch=batch), b"".join(lines))
            w.bytes += _write(bdir / "cases.csv", b"".join(rows))
            (bdir / "_READY").write_bytes(b"")     # last: the batch is complete
            w.files += len(sheets) + 2
            w.batches += 1
    for team, ids in patients.items():
        body = b"patient_id,consent_class,event,event_date,reference\n" + b"".join(
            b"%s,A,consented,2019-05-01,ICF-%s\n" % (p, p) for p in ids)
        w.bytes += _write(landing / team / "_consent" / "fullscale.csv", body)
        w.files += 1
    return w


def _write(path: Path, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def _xlsx(members: dict[str, Cut], v: dict[bytes, bytes]) -> bytes:
    """Per-case Excel sheets are zip files: patch the members, store them (openpyxl reads stored zips)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, cut in members.items():
            z.writestr(zipfile.ZipInfo(name, (2019, 1, 1, 0, 0, 0)), cut.render(v))
    return buf.getvalue()

"""The checker: one index, every kind of object, and whole trees of them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from medlake.checker.dicom import PrivateAllowList, scan_dicom_into
from medlake.checker.findings import CheckReport, Finding
from medlake.checker.images import TIFF_MAGICS, is_nifti_gz, scan_nifti_gz_into, scan_tiff_into
from medlake.checker.index import IdentifierIndex
from medlake.checker.sink import Sink
from medlake.checker.tables import (DeltaScope, is_delta, scan_delta_into, scan_parquet_dataset_into,
                                    scan_parquet_into)
from medlake.checker.text import (PNG_MAGIC, TEXT_SUFFIXES, scan_binary_into, scan_jpeg_into, scan_png_into,
                                  scan_text_into, scan_zip_into)

PATH_PLACEHOLDER = "(path)"


class Checker:
    """Scans de-identified outputs for identifiers and reports where, never what.

    index: the identifiers to look for (IdentifierIndex.build(...)); built-in patterns included.
    allowed_private: private DICOM elements that may remain (see PrivateAllowList); every other
        private element is a "private_tag" finding.
    max_rows_per_column: at most this many row findings per (column, kind) of a table; beyond it one
        finding "<column>[more rows not listed]".
    storage_options: passed to deltalake for s3:// tables.

    Every scan_* method returns findings and never raises on a bad object: an object that cannot be
    read is itself a finding of kind "unreadable" (an object nobody could check must not be
    released).
    """

    def __init__(self, index: IdentifierIndex, allowed_private: Iterable = (), max_rows_per_column: int = 1000,
                 storage_options: dict | None = None):
        self.index = index
        self.allowed_private = PrivateAllowList(allowed_private)
        self.max_rows_per_column = max_rows_per_column
        self.storage_options = storage_options

    # --- objects --------------------------------------------------------------------------------

    def _run(self, obj: str, fn, *args, name_to_check: str | None = None) -> list[Finding]:
        if name_to_check is not None and self.index.find(name_to_check):
            sink = Sink(self.index, PATH_PLACEHOLDER)
            sink.check("path", name_to_check)
        else:
            sink = Sink(self.index, obj)
        try:
            fn(*args, sink)
        except Exception as e:   # noqa: BLE001 - any failure to read is reported, not raised
            sink.add(f"(unreadable: {type(e).__name__})", "unreadable")
        return sink.findings

    def scan_dicom(self, path, *, _obj: str | None = None) -> list[Finding]:
        """Every element of a DICOM file at every depth: text VRs, UN/OB that decode as text,
        private elements (and their creators) and the file meta; a PatientBirthDate with a value,
        and any private element not allowed, are findings whatever their value."""
        p = str(path)
        return self._run(_obj or p, lambda s: scan_dicom_into(p, s, self.allowed_private),
                         name_to_check=None if _obj else p)

    def scan_table(self, uri_or_path, storage_options: dict | None = None, *, _obj: str | None = None,
                   scope: DeltaScope | None = None) -> list[Finding]:
        """A Delta table (data, every _delta_log file, unreferenced data files still on disk; or, with
        a scope, the rows and commits it names) or a Parquet file or folder (data, column
        statistics, footer metadata)."""
        uri = str(uri_or_path)
        opts = storage_options if storage_options is not None else self.storage_options
        local = "://" not in uri or uri.startswith("file://")
        path = uri[7:] if uri.startswith("file://") else uri
        if not local or is_delta(path):
            def fn(s):
                scan_delta_into(uri, s, opts, self.max_rows_per_column, scope)
        else:
            def fn(s):
                scan_parquet_dataset_into(path, s, self.max_rows_per_column)
        return self._run(_obj or uri, fn, name_to_check=None if _obj else uri)

    def scan_parquet(self, path, *, _obj: str | None = None) -> list[Finding]:
        p = str(path)
        return self._run(_obj or p, lambda s: scan_parquet_into(p, s, self.max_rows_per_column),
                         name_to_check=None if _obj else p)

    def scan_text(self, path, *, _obj: str | None = None) -> list[Finding]:
        """JSON (JSON pointers), CSV/TSV (column[row]), Markdown, HTML, XML and plain text (line N)."""
        p = str(path)
        return self._run(_obj or p, lambda s: scan_text_into(p, s), name_to_check=None if _obj else p)

    def scan_file(self, path, *, _obj: str | None = None) -> list[Finding]:
        """Any single file, by content: DICOM (DICM magic), Parquet (PAR1), PNG and JPEG (text chunks
        only), ZIP (members), text by extension, anything else by its readable text runs."""
        p = str(path)
        obj = _obj or p
        check = None if _obj else p
        try:
            with open(p, "rb") as f:
                head = f.read(132)
        except OSError as e:
            return [Finding(obj if check is None or not self.index.find(p) else PATH_PLACEHOLDER,
                            f"(unreadable: {type(e).__name__})", "unreadable")]
        low = p.lower()
        if head[128:132] == b"DICM" or low.endswith(".dcm"):
            return self.scan_dicom(p, _obj=_obj) if _obj else self.scan_dicom(p)
        if head[:4] == b"PAR1" or low.endswith(".parquet"):
            return self.scan_parquet(p, _obj=_obj) if _obj else self.scan_parquet(p)
        if head[:8] == PNG_MAGIC:
            fn = scan_png_into
        elif head[:3] == b"\xff\xd8\xff":
            fn = scan_jpeg_into
        elif head[:4] == b"PK\x03\x04":
            fn = scan_zip_into
        elif head[:4] in TIFF_MAGICS:
            fn = scan_tiff_into
        elif is_nifti_gz(low, head):
            fn = scan_nifti_gz_into
        elif low.endswith(TEXT_SUFFIXES):
            fn = scan_text_into
        else:
            fn = scan_binary_into
        return self._run(obj, lambda s: fn(p, s), name_to_check=check)

    # --- trees ----------------------------------------------------------------------------------

    def scan_tree(self, root) -> list[Finding]:
        """Every object under root (Delta tables as tables, everything else file by file) and the
        name of every file and folder below root.

        A name holding an identifier is a finding with object "(path)" and location "path:<the
        relative path with each such name replaced by (path N)>"; the findings inside such a file
        name it by that same redacted path."""
        return self._scan_tree(root)[1]

    def check(self, root, content_checked: Callable[[str], bool] | None = None,
              linked_inodes: set[int] | None = None, linked_dir: str | None = None) -> CheckReport:
        """scan_tree as a report: objects scanned, findings, counts by kind.

        `content_checked(path)` may say that a file's bytes were already scanned (a hard link to an
        object that passed its own check): its name is still checked, its content is not read again.
        `linked_dir` (a folder below root) with `linked_inodes` does the same for a large tree of such
        links without a stat per file: names from the directory listing, content only for files whose
        inode is not among the links."""
        if linked_dir is None:
            n, findings = self._scan_tree(root, content_checked)
            return CheckReport.of(n, findings)
        top = os.path.join(str(root), linked_dir)
        n, findings = self._scan_tree(root, content_checked, prune=top)
        names: list[str] = []
        stack = [top]
        while stack:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    names.append(os.path.relpath(e.path, str(root)))
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    else:
                        n += 1
                        if e.inode() not in (linked_inodes or set()):
                            findings += self.scan_file(e.path, _obj=names[-1])
        for i in self.index.suspects([p.rsplit("/", 1)[-1] for p in names]):
            findings.extend(Finding(PATH_PLACEHOLDER, "path:(a name below " + linked_dir + ")", k)
                            for k in self.index.find(names[i].rsplit("/", 1)[-1]))
        return CheckReport.of(n, findings)

    def _scan_tree(self, root, content_checked: Callable[[str], bool] | None = None,
                   prune: str | None = None) -> tuple[int, list[Finding]]:
        root = str(root)
        findings: list[Finding] = []
        names: dict[str, str] = {}        # offending name -> "(path N)"
        objects = 0

        def shown_name(name: str) -> str:
            kinds = self.index.find(name)
            if not kinds:
                return name
            return names.setdefault(name, f"(path {len(names) + 1})")

        def redacted(rel_parts: list[str]) -> tuple[str, bool]:
            shown = [shown_name(x) for x in rel_parts]
            return "/".join(shown), shown != rel_parts

        def name_findings(rel_parts: list[str]) -> None:
            name = rel_parts[-1]
            kinds = self.index.find(name)
            if kinds:
                loc = "path:" + redacted(rel_parts)[0]
                findings.extend(Finding(PATH_PLACEHOLDER, loc, k) for k in kinds)

        # Names are searched together at the end (IdentifierIndex.suspects): a release of 100,000
        # objects has 300,000 names, nearly all of them clean.
        entries: list[tuple[str, ...]] = []
        delta: dict[str, bool] = {}

        def delta_table(path: str) -> bool:
            if path not in delta:
                delta[path] = is_delta(path)
            return delta[path]

        if os.path.isfile(root):
            return 1, self.scan_file(root)
        if is_delta(root):
            objects += 1
            findings += self.scan_table(root)
        for d, dirs, files in os.walk(root):
            if prune is not None and d == os.path.dirname(prune):
                dirs[:] = [x for x in dirs if os.path.join(d, x) != prune]
            dirs.sort()
            rel_dir = os.path.relpath(d, root)
            parts = [] if rel_dir == "." else Path(rel_dir).parts
            inside_delta = any(delta_table(os.path.join(root, *parts[:i])) for i in range(len(parts) + 1))
            keep = []
            for sub in dirs:
                entries.append((*parts, sub))
                subpath = os.path.join(d, sub)
                if not inside_delta and delta_table(subpath):
                    objects += 1
                    rel, _ = redacted([*parts, sub])
                    obj = os.path.join(root, rel)
                    findings += self.scan_table(subpath, _obj=obj)
                keep.append(sub)
            dirs[:] = keep
            for fn in sorted(files):
                entries.append((*parts, fn))
                if inside_delta:
                    continue           # its data and log were scanned as the table
                objects += 1
                if content_checked is not None and content_checked(os.path.join(d, fn)):
                    continue
                rel, _ = redacted([*parts, fn])
                findings += self.scan_file(os.path.join(d, fn), _obj=os.path.join(root, rel))
        for i in self.index.suspects([p[-1] for p in entries]):
            name_findings(list(entries[i]))
        return objects, findings


# --- module-level conveniences ------------------------------------------------------------------

def scan_dicom(path, index: IdentifierIndex, allowed_private: Iterable = ()) -> list[Finding]:
    return Checker(index, allowed_private).scan_dicom(path)


def scan_table(uri_or_path, index: IdentifierIndex, storage_options: dict | None = None) -> list[Finding]:
    return Checker(index, storage_options=storage_options).scan_table(uri_or_path)


def scan_text(path, index: IdentifierIndex) -> list[Finding]:
    return Checker(index).scan_text(path)


def scan_tree(root, index: IdentifierIndex, allowed_private: Iterable = ()) -> list[Finding]:
    return Checker(index, allowed_private).scan_tree(root)

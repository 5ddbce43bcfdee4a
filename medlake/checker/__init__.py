"""The identifier checker: the second, independent line of defence before anything is released.

It scans de-identified outputs (DICOM files, Delta tables and their logs, Parquet files and their
footers, text, images' text chunks, file and folder names) for the identifiers of the source data
and for identifier-shaped patterns, and reports *where* (object, location) and *what kind*, never
the value. It shares no code with medlake.deid on purpose.

    index = IdentifierIndex.build([("patient_id", "12345678"), ("patient_name", "CHEN^YI-CHUN"), ...])
    report = Checker(index, allowed_private=["MEDLAKE 1.0"]).check(release_dir)
    if not report.clean: refuse the release; print(report) shows kinds and places only.
"""

from medlake.checker.checker import Checker, scan_dicom, scan_table, scan_text, scan_tree
from medlake.checker.dicom import PrivateAllowList
from medlake.checker.findings import CheckReport, Finding
from medlake.checker.index import IdentifierIndex, fold, national_id_valid

__all__ = ["CheckReport", "Checker", "Finding", "IdentifierIndex", "PrivateAllowList", "fold", "national_id_valid",
           "scan_dicom", "scan_table", "scan_text", "scan_tree"]

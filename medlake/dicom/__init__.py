"""DICOM reading for ingestion: header fields, SOP classes, integrity checks."""

"""DICOM header modules shared by every object a case writes, with identifiers where real exports put them.

Each planted value is reported through ctx.plant so the truth file knows every place it occurs.
"""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from .context import CaseContext, Series, Study

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1462.1"   # fixed: part of the byte-identical contract
PRIVATE_CREATOR = "TWHIS PATIENT INFO 1.0"


def code(value: str, scheme: str, meaning: str) -> Dataset:
    d = Dataset()
    d.CodeValue, d.CodingSchemeDesignator, d.CodeMeaning = value, scheme, meaning
    return d


def seq(*items: Dataset) -> Sequence:
    return Sequence(list(items))


def new_dataset(ctx: CaseContext, sop_class: str, sop_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = "TWHIS_EXPORT_3"
    ds.SpecificCharacterSet = "ISO_IR 192" if ctx.chinese else "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def write(ctx: CaseContext, rel: str, ds: Dataset) -> None:
    path = ctx.batch_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)


def patient_module(ds: Dataset, ctx: CaseContext, where: str) -> None:
    p, plant = ctx.patient, ctx.plant
    if ctx.chinese:
        ds.PatientName = f"{p.name_dicom}={p.name_pn_ideographic}"
        plant("name_pn_ideographic", p.name_pn_ideographic, f"{where}:PatientName")
    else:
        ds.PatientName = p.name_dicom
    plant("name_dicom", p.name_dicom, f"{where}:PatientName")
    ds.PatientID = p.chart_no
    plant("chart_no", p.chart_no, f"{where}:PatientID")
    ds.IssuerOfPatientID = ctx.site.team.upper() + "-HIS"
    other = Dataset()
    other.PatientID, other.TypeOfPatientID, other.IssuerOfPatientID = p.national_id, "TEXT", "TW-MOI"
    ds.OtherPatientIDsSequence = seq(other)
    plant("national_id", p.national_id, f"{where}:OtherPatientIDsSequence")
    ds.PatientBirthDate = p.birth_dicom
    plant("birth_date", p.birth_dicom, f"{where}:PatientBirthDate")
    ds.PatientSex = p.sex


def study_module(ds: Dataset, ctx: CaseContext, study: Study, where: str) -> None:
    ds.StudyInstanceUID = study.uid
    ds.StudyDate = study.date_dicom
    ds.StudyTime = study.time
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession
    ctx.plant("accession_number", study.accession, f"{where}:AccessionNumber")
    ds.ReferringPhysicianName = ctx.site.physicians[0]
    ctx.plant("physician", ctx.site.physicians[0], f"{where}:ReferringPhysicianName")
    ds.StudyDescription = study.description
    age = (study.date - ctx.patient.birth_date).days // 365
    ds.PatientAge = f"{age:03d}Y"


def equipment_module(ds: Dataset, ctx: CaseContext, modality: str, where: str,
                     manufacturer: str = "SIEMENS", model: str = "SOMATOM Force") -> None:
    site = ctx.site
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    ds.SoftwareVersions = "VB20A"
    ds.InstitutionName = site.institution
    # The Chinese address only goes into objects that declare UTF-8 (ISO_IR 192).
    address = site.institution_address if ctx.chinese else site.institution_address_en
    ds.InstitutionAddress = address
    ds.StationName = site.station(modality)
    ds.DeviceSerialNumber = site.serial(modality)
    for kind, value, attr in (("institution", site.institution, "InstitutionName"),
                              ("institution_address", address, "InstitutionAddress"),
                              ("station_name", site.station(modality), "StationName"),
                              ("device_serial", site.serial(modality), "DeviceSerialNumber")):
        ctx.plant(kind, value, f"{where}:{attr}")


def image_identifiers(ds: Dataset, ctx: CaseContext, study: Study, series: Series, where: str) -> None:
    """The identifier-bearing extras of image headers: contact data, nested and private sequences."""
    p, plant, site = ctx.patient, ctx.plant, ctx.site
    ds.PatientAddress = p.address
    plant("address", p.address, f"{where}:PatientAddress")
    ds.PatientTelephoneNumbers = p.phone
    plant("phone", p.phone, f"{where}:PatientTelephoneNumbers")
    ds.AdditionalPatientHistory = f"{p.name_text} tel {p.phone}; referred by {site.physicians[0].replace('^', ' ')}"
    plant("name_text", p.name_text, f"{where}:AdditionalPatientHistory")
    plant("physician_text", site.physicians[0].replace("^", " "), f"{where}:AdditionalPatientHistory")
    perf = site.physicians[1 + series.number % (len(site.physicians) - 1)]
    op = site.operators[series.number % len(site.operators)]
    ds.PerformingPhysicianName = perf
    ds.OperatorsName = op
    plant("physician", perf, f"{where}:PerformingPhysicianName")
    plant("operator", op, f"{where}:OperatorsName")

    req = Dataset()
    req.AccessionNumber = study.accession
    req.RequestedProcedureID = "RP" + study.accession
    req.ScheduledProcedureStepID = "SPS" + study.accession[-6:]
    req.RequestedProcedureDescription = study.description
    ds.RequestAttributesSequence = seq(req)
    plant("accession_number", study.accession, f"{where}:RequestAttributesSequence")

    ref_patient = Dataset()
    ref_patient.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"   # Detached Patient Management
    ref_patient.ReferencedSOPInstanceUID = ctx.uid("patient-record")
    ds.ReferencedPatientSequence = seq(ref_patient)

    # Two-level nesting: the values the PACS coerced away on import (national ID, old name form).
    modified = Dataset()
    modified.PatientID = p.national_id
    modified.PatientName = p.name_dicom
    original = Dataset()
    original.ModifiedAttributesSequence = seq(modified)
    original.AttributeModificationDateTime = study.date_dicom + "120000"
    original.ModifyingSystem = site.team.upper() + " PACS"
    original.SourceOfPreviousValues = site.team.upper() + " HIS"
    original.ReasonForTheAttributeModification = "COERCE"
    ds.OriginalAttributesSequence = seq(original)
    plant("national_id", p.national_id, f"{where}:OriginalAttributesSequence/ModifiedAttributesSequence")
    plant("name_dicom", p.name_dicom, f"{where}:OriginalAttributesSequence/ModifiedAttributesSequence")

    block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", p.name_text)
    block.add_new(0x11, "LO", p.chart_no)
    inner = Dataset()
    inner_block = inner.private_block(0x0029, PRIVATE_CREATOR, create=True)
    inner_block.add_new(0x13, "LO", p.national_id)
    inner_block.add_new(0x14, "LO", p.phone)
    block.add_new(0x12, "SQ", seq(inner))
    plant("name_text", p.name_text, f"{where}:private(0029,{PRIVATE_CREATOR})")
    plant("chart_no", p.chart_no, f"{where}:private(0029,{PRIVATE_CREATOR})")
    plant("national_id", p.national_id, f"{where}:private(0029,{PRIVATE_CREATOR})/SQ")
    plant("phone", p.phone, f"{where}:private(0029,{PRIVATE_CREATOR})/SQ")


def series_module(ds: Dataset, series: Series) -> None:
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.Modality = series.modality
    ds.SeriesDescription = series.description
    ds.FrameOfReferenceUID = series.frame_of_ref
    ds.PositionReferenceIndicator = ""


def image_comment(ds: Dataset, ctx: CaseContext, where: str) -> None:
    p = ctx.patient
    if ctx.chinese:
        ds.ImageComments = f"病人 {p.name_zh} 病歷號 {p.chart_no} 追蹤"
        ctx.plant("name_zh", p.name_zh, f"{where}:ImageComments")
    else:
        ds.ImageComments = f"pt {p.name_text} chart {p.chart_no} f/u"
        ctx.plant("name_text", p.name_text, f"{where}:ImageComments")
    ctx.plant("chart_no", p.chart_no, f"{where}:ImageComments")


def annotation_header(ctx: CaseContext, sop_class: str, sop_uid: str, study: Study, modality: str,
                      series_uid: str, series_number: int, description: str, where: str) -> Dataset:
    """Patient, study, series and equipment modules of an annotation object in the case's study."""
    ds = new_dataset(ctx, sop_class, sop_uid)
    patient_module(ds, ctx, where)
    study_module(ds, ctx, study, where)
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = 1
    ds.ContentDate = study.date_dicom
    ds.ContentTime = "153000"
    equipment_module(ds, ctx, modality if modality in ctx.site.stations else "CT", where,
                     manufacturer="MEDIS" if modality == "SR" else "Philips", model="Annotation Workstation")
    return ds


def rel(*parts: str) -> str:
    return str(Path(*parts).as_posix())

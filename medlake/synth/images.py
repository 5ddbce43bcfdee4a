"""Image objects per modality: volumes, radiographs, cines, ultrasound, NM, fundus photos, waveforms.

Headers are built once per series and shallow-copied per instance (only per-instance elements are set
on the copy), which keeps tiny-scale runs at thousands of cases per minute.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from . import headers as H
from .context import CaseContext, Instance, Series, Study
from .phantoms import (TEXT_RGB, TEXT_VALUE_12BIT, TEXT_VALUE_8BIT, body_phantom, burn_text, fundus,
                       head_phantom, hu_to_mr, lesion_disk, speckle, xray)

SOP = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",
    "US": "1.2.840.10008.5.1.4.1.1.3.1",       # Ultrasound Multi-frame: IVUS and IVOCT cines
    "NM": "1.2.840.10008.5.1.4.1.1.20",
    "OP": "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit
    "HD": "1.2.840.10008.5.1.4.1.1.9.2.1",     # Hemodynamic Waveform
}
HEAD_DATASETS = {"brain-mets-mri", "brain-tumor-mri", "acoustic-neuroma-mri", "svd-mri", "aneurysm-mra",
                 "neck-ct-lymph"}
MANUFACTURER = {"CT": ("SIEMENS", "SOMATOM Force"), "MR": ("GE MEDICAL SYSTEMS", "SIGNA Premier"),
                "CR": ("FUJIFILM", "FCR Profect"), "DX": ("Carestream", "DRX-Evolution"),
                "XA": ("Philips", "Allura Xper FD10"), "IVUS": ("Volcano", "s5i"), "IVOCT": ("Abbott", "ILUMIEN OPTIS"),
                "NM": ("GE MEDICAL SYSTEMS", "Discovery NM 530c"), "OP": ("TOPCON", "TRC-NW8"),
                "HD": ("GE Healthcare", "Mac-Lab")}


def _file_name(ctx: CaseContext, idx: int, sop_uid: str) -> str:
    if ctx.file_style == "uid":
        return sop_uid + ".dcm"
    if ctx.file_style == "bare":
        return f"IM{idx:05d}"
    return f"IM{idx:04d}.dcm"


def _new_study(ctx: CaseContext, n: int, description: str) -> Study:
    r = ctx.rng
    date = dt.date(2017, 11, 1) + dt.timedelta(days=r.randrange(0, 700))
    accession = f"A{date:%y}{r.randrange(10_000_000, 99_999_999)}"
    study = Study(uid=ctx.uid("study", n), date=date, time=f"{r.randrange(8, 18):02d}{r.randrange(60):02d}00",
                  accession=accession, study_id=f"{r.randrange(100000, 999999)}", description=description)
    if r.random() < 0.3:   # some RIS systems put the patient's name into the description
        study.description = f"{description} ({ctx.patient.name_text})"
        ctx.plant("name_text", ctx.patient.name_text, "dicom:StudyDescription")
    ctx.studies.append(study)
    return study


def _series_template(ctx: CaseContext, study: Study, series: Series, modality: str) -> Dataset:
    where = "dicom"
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"   # image headers always carry the Chinese home address
    ds.SOPClassUID = series.sop_class
    H.patient_module(ds, ctx, where)
    H.study_module(ds, ctx, study, where)
    H.series_module(ds, series)
    ds.Modality = modality
    man, model = MANUFACTURER.get(modality, ("SIEMENS", "Generic"))
    H.equipment_module(ds, ctx, modality, where, manufacturer=man, model=model)
    H.image_identifiers(ds, ctx, study, series, where)
    H.image_comment(ds, ctx, where)
    ds.ContentDate = study.date_dicom
    ds.ContentTime = study.time
    ds.AcquisitionDate = study.date_dicom
    return ds


# Per-instance tags: they must not be in the template, so setting them on a copy never touches it.
_PER_INSTANCE = [Tag("SOPInstanceUID"), Tag("InstanceNumber"), Tag("PixelData")]


def _instance(ctx: CaseContext, template: Dataset, sop_uid: str, number: int) -> Dataset:
    ds = Dataset(dict(template._dict))   # shallow: a new tag map sharing the template's element objects
    ds.file_meta = H.FileMetaDataset()
    fm = ds.file_meta
    fm.MediaStorageSOPClassUID = template.SOPClassUID
    fm.MediaStorageSOPInstanceUID = sop_uid
    fm.TransferSyntaxUID = H.ExplicitVRLittleEndian
    fm.ImplementationClassUID = H.IMPLEMENTATION_UID
    fm.ImplementationVersionName = "TWHIS_EXPORT_3"
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = number
    return ds


def _series_folder(ctx: CaseContext, study_n: int, series: Series) -> str:
    return H.rel("images", ctx.case_folder, f"ST{study_n:02d}_{ctx.studies[-1].date_dicom}",
                 f"SE{series.number:03d}_{series.description.replace(' ', '_')}")


def _mono(ds: Dataset, bits: int, signed: bool = False) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0


def _lesion(ctx: CaseContext, rows: int, cols: int) -> tuple[tuple[float, float], float]:
    r = ctx.rng
    radius = max(1.5, min(rows, cols) * r.uniform(0.07, 0.12))
    c = (round(rows * r.uniform(0.35, 0.65), 1), round(cols * r.uniform(0.35, 0.65), 1))
    return c, round(radius, 1)


@lru_cache(maxsize=16)
def _volume(kind: str, shape: tuple, spacing: tuple) -> np.ndarray:
    return head_phantom(shape, spacing) if kind == "head" else body_phantom(shape, spacing)


def write_volume(ctx: CaseContext, modality: str, n_series: int) -> None:
    """CT or MR: one study, n_series series over the same frame of reference and slice positions."""
    ds_id = ctx.dataset.id
    head = ds_id in HEAD_DATASETS
    rows = cols = 8 if ctx.tiny else 64
    slices = 1 if ctx.tiny else (16 if head else 12)
    px = (224.0 if head else 352.0) / cols
    thick = 3.0 if head else 2.5
    vol = _volume("head" if head else "body", (slices, rows, cols), (thick, px, px))
    study = _new_study(ctx, 1, {"CT": "CT " + ctx.dataset.organ.upper(), "MR": "MRI BRAIN W/WO"}[modality])
    center, radius = _lesion(ctx, rows, cols)
    mid = slices // 2
    lesion_slices = tuple(range(max(0, mid - 2), min(slices, mid + 2)))
    z0 = round(ctx.rng.uniform(-160, -60), 1)
    x0, y0 = -(cols - 1) / 2 * px, -(rows - 1) / 2 * px
    frame_of_ref = ctx.uid("for", 1)
    disk = lesion_disk(rows, cols, center, radius)
    descs = ["AX T1 POST", "AX FLAIR", "AX T2"] if modality == "MR" else ["AXIAL 2.5 CARDIAC" if not head else "AX NECK C+", "AXIAL LUNG"]
    idx = 0
    for s in range(n_series):
        series = Series(uid=ctx.uid("series", 1, s), number=s + 1 + (200 if modality == "MR" else 0),
                        modality=modality, sop_class=SOP[modality], description=descs[s % len(descs)],
                        frame_of_ref=frame_of_ref, rows=rows, cols=cols, pixel_spacing=(px, px), thickness=thick,
                        lesion_rc=center, lesion_radius=radius, lesion_slices=lesion_slices)
        study.series.append(series)
        t = _series_template(ctx, study, series, modality)
        t.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        t.ImageOrientationPatient = list(series.orientation)
        t.PixelSpacing = [round(px, 4), round(px, 4)]
        t.SliceThickness = thick
        t.SpacingBetweenSlices = thick
        t.Rows, t.Columns = rows, cols
        if modality == "CT":
            _mono(t, 12)
            t.RescaleIntercept, t.RescaleSlope, t.RescaleType = -1024, 1, "HU"
            t.KVP = 120
            t.WindowCenter, t.WindowWidth = 40, 400
        else:
            _mono(t, 12)
            t.MagneticFieldStrength = 3
            t.RepetitionTime, t.EchoTime = (500 + 100 * s), (10 + 80 * s)
            t.ScanningSequence, t.SequenceVariant = "SE", "NONE"
        folder = _series_folder(ctx, 1, series)
        for k in range(slices):
            idx += 1
            sop = ctx.uid("sop", 1, s, k)
            z = round(z0 + k * thick, 2)
            plane = vol[k].copy()
            if k in lesion_slices:
                plane[disk] = plane[disk] + 60 if modality == "CT" else plane[disk]
            stored = (plane.astype(np.int32) + 1024).astype(np.uint16) if modality == "CT" else hu_to_mr(plane)
            if modality == "MR" and k in lesion_slices:
                stored[disk] = 1500 + 200 * s
            ds = _instance(ctx, t, sop, k + 1)
            ds.ImagePositionPatient = [round(x0, 2), round(y0, 2), z]
            ds.SliceLocation = z
            ds.PixelData = stored.tobytes()
            path = H.rel(folder, _file_name(ctx, idx, sop))
            H.write(ctx, path, ds)
            series.instances.append(Instance(sop, series.sop_class, path, k + 1, rows, cols, 1,
                                             (round(x0, 2), round(y0, 2), z)))
            ctx.record(path, "dicom_image", sop)


def _burn_lines(ctx: CaseContext) -> list[str]:
    p = ctx.patient
    ctx.plant("name_text", p.name_text, "pixels")
    ctx.plant("chart_no", p.chart_no, "pixels")
    return [p.name_text, p.chart_no]


def write_xray(ctx: CaseContext, modality: str, n_studies: int, per_study: int) -> None:
    rows = cols = 8 if ctx.tiny else 256
    views = ["PA", "LAT", "AP", "OBL"]
    regions = {"hand-foot-xray-ra": ["HAND", "FOOT"], "spine-xray-as": ["SPINE"], "spine-xray-fracture": ["TLSPINE"]}
    idx = 0
    for st in range(n_studies):
        region = regions.get(ctx.dataset.id, ["CHEST"])[st % len(regions.get(ctx.dataset.id, ["CHEST"]))]
        study = _new_study(ctx, st + 1, f"XR {region}")
        center, radius = _lesion(ctx, rows, cols)
        series = Series(uid=ctx.uid("series", st + 1, 0), number=1, modality=modality, sop_class=SOP[modality],
                        description=f"{region} {views[0]}", frame_of_ref=ctx.uid("for", st + 1), rows=rows,
                        cols=cols, pixel_spacing=(0.15, 0.15), lesion_rc=center, lesion_radius=radius)
        study.series.append(series)
        t = _series_template(ctx, study, series, modality)
        _mono(t, 12)
        t.Rows, t.Columns = rows, cols
        t.ImageType = ["ORIGINAL", "PRIMARY"]
        t.BodyPartExamined = region
        if modality == "DX":
            t.PresentationIntentType = "FOR PRESENTATION"
            t.ImagerPixelSpacing = [0.15, 0.15]
        else:
            t.PixelSpacing = [0.15, 0.15]
        folder = _series_folder(ctx, st + 1, series)
        for k in range(per_study):
            idx += 1
            sop = ctx.uid("sop", st + 1, 0, k)
            ds = _instance(ctx, t, sop, k + 1)
            ds.ViewPosition = views[k % len(views)]
            pixels = xray(rows, cols, idx + ctx.rng.randrange(7))
            burned = ctx.rng.random() < 0.4
            if burned:
                burn_text(pixels, _burn_lines(ctx), TEXT_VALUE_12BIT)
            ds.BurnedInAnnotation = "YES" if burned else "NO"
            ds.PixelData = pixels.tobytes()
            path = H.rel(folder, _file_name(ctx, idx, sop))
            H.write(ctx, path, ds)
            series.instances.append(Instance(sop, series.sop_class, path, k + 1, rows, cols, 1, None, burned))
            ctx.record(path, "dicom_image", sop, burned)


def write_cine(ctx: CaseContext, modality: str, n_instances: int) -> None:
    """XA cine runs, IVUS / IVOCT pullbacks (US Multi-frame) and NM tomograms: multi-frame objects."""
    tiny = ctx.tiny
    rows = cols = 8 if tiny else (128 if modality in ("IVUS", "IVOCT") else 64 if modality == "XA" else 32)
    frames = 2 if tiny else (8 if modality != "NM" else 16)
    sop_class = SOP["US"] if modality in ("IVUS", "IVOCT") else SOP[modality]
    study = _new_study(ctx, 1, {"XA": "CORONARY ANGIOGRAPHY", "IVUS": "IVUS CORONARY", "IVOCT": "OCT CORONARY",
                                "NM": "MYOCARDIAL PERFUSION SPECT"}[modality])
    center, radius = _lesion(ctx, rows, cols)
    series = Series(uid=ctx.uid("series", 1, 0), number=1, modality=modality, sop_class=sop_class,
                    description={"XA": "LCA RAO CAU", "IVUS": "LAD PULLBACK", "IVOCT": "LAD OCT RUN",
                                 "NM": "STRESS TOMO"}[modality],
                    frame_of_ref=ctx.uid("for", 1), rows=rows, cols=cols, lesion_rc=center, lesion_radius=radius)
    study.series.append(series)
    t = _series_template(ctx, study, series, modality)
    t.Rows, t.Columns = rows, cols
    t.NumberOfFrames = frames
    bits = 16 if modality == "NM" else 8
    _mono(t, bits)
    if modality == "NM":
        t.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
        t.FrameIncrementPointer = [Tag("SliceVector")]
        t.SliceVector = list(range(1, frames + 1))
        t.NumberOfSlices = frames
        t.PixelSpacing = [6.4, 6.4]
        t.SliceThickness = 6.4
    else:
        t.ImageType = ["ORIGINAL", "PRIMARY"]
        t.FrameTime = 66.67 if modality == "XA" else 33.33
        t.FrameIncrementPointer = Tag("FrameTime")
        t.CineRate = 15 if modality == "XA" else 30
        if modality == "XA":
            t.PositionerPrimaryAngle, t.PositionerSecondaryAngle = -30, -25
            t.KVP = 80
        else:
            t.IVUSAcquisition = "MOTOR_PULLBACK"
            t.IVUSPullbackRate = 0.5
    folder = _series_folder(ctx, 1, series)
    nrng = np.random.default_rng(ctx.rng.randrange(2 ** 32))
    for k in range(n_instances):
        sop = ctx.uid("sop", 1, 0, k)
        ds = _instance(ctx, t, sop, k + 1)
        pixels = speckle(frames, rows, cols, nrng)
        burned = modality in ("IVUS", "IVOCT")   # these consoles always stamp the patient on the frame
        if modality == "NM":
            pixels = pixels.astype(np.uint16) * 20
        if burned:
            burn_text(pixels, _burn_lines(ctx), TEXT_VALUE_8BIT)
        ds.BurnedInAnnotation = "YES" if burned else "NO"
        ds.PixelData = pixels.tobytes()
        path = H.rel(folder, _file_name(ctx, k + 1, sop))
        H.write(ctx, path, ds)
        series.instances.append(Instance(sop, sop_class, path, k + 1, rows, cols, frames, None, burned))
        ctx.record(path, "dicom_image", sop, burned)


def write_fundus(ctx: CaseContext, n_images: int) -> None:
    rows = cols = 8 if ctx.tiny else 128
    study = _new_study(ctx, 1, "FUNDUS PHOTOGRAPHY")
    center, radius = _lesion(ctx, rows, cols)
    series = Series(uid=ctx.uid("series", 1, 0), number=1, modality="OP", sop_class=SOP["OP"],
                    description="COLOR FUNDUS 45", frame_of_ref=ctx.uid("for", 1), rows=rows, cols=cols,
                    lesion_rc=center, lesion_radius=radius)
    study.series.append(series)
    t = _series_template(ctx, study, series, "OP")
    t.Rows, t.Columns = rows, cols
    t.SamplesPerPixel = 3
    t.PhotometricInterpretation = "RGB"
    t.PlanarConfiguration = 0
    t.BitsAllocated, t.BitsStored, t.HighBit, t.PixelRepresentation = 8, 8, 7, 0
    t.NumberOfFrames = 1
    t.ImageType = ["ORIGINAL", "PRIMARY"]
    t.LossyImageCompression = "00"
    t.PatientEyeMovementCommanded = "NO"
    t.HorizontalFieldOfView = 45
    t.AcquisitionContextSequence = H.seq()
    t.AnatomicRegionSequence = H.seq(H.code("81745001", "SCT", "Eye"))
    folder = _series_folder(ctx, 1, series)
    for k in range(n_images):
        sop = ctx.uid("sop", 1, 0, k)
        ds = _instance(ctx, t, sop, k + 1)
        ds.ImageLaterality = "R" if k % 2 == 0 else "L"
        pixels = fundus(rows, cols, k)
        burned = ctx.rng.random() < 0.35
        if burned:
            burn_text(pixels, _burn_lines(ctx), TEXT_RGB)
        ds.BurnedInAnnotation = "YES" if burned else "NO"
        ds.PixelData = pixels.tobytes()
        path = H.rel(folder, _file_name(ctx, k + 1, sop))
        H.write(ctx, path, ds)
        series.instances.append(Instance(sop, SOP["OP"], path, k + 1, rows, cols, 1, None, burned))
        ctx.record(path, "dicom_image", sop, burned)


def _channel(label: str, code_value: str) -> Dataset:
    ch = Dataset()
    src = H.code(code_value, "MDC", label)
    src.CodingSchemeVersion = "1.0"
    ch.ChannelSourceSequence = H.seq(src)
    ch.ChannelLabel = label
    ch.ChannelSensitivity = 1
    ch.ChannelSensitivityUnitsSequence = H.seq(H.code("mm[Hg]", "UCUM", "mmHg"))
    ch.ChannelSensitivityCorrectionFactor = 1
    ch.ChannelBaseline = 0
    ch.ChannelSampleSkew = 0
    ch.WaveformBitsStored = 16
    return ch


def write_waveform(ctx: CaseContext, n_objects: int) -> None:
    """FFR: haemodynamic pressure recordings (aortic Pa and distal Pd) at rest and at hyperaemia."""
    study = _new_study(ctx, 1, "FFR PRESSURE WIRE")
    series = Series(uid=ctx.uid("series", 1, 0), number=1, modality="HD", sop_class=SOP["HD"],
                    description="FFR LAD", frame_of_ref=ctx.uid("for", 1), rows=0, cols=0)
    study.series.append(series)
    t = _series_template(ctx, study, series, "HD")
    del t[Tag("FrameOfReferenceUID")], t[Tag("PositionReferenceIndicator")]
    samples = 8 if ctx.tiny else 1000
    tt = np.arange(samples) / 250.0
    for k in range(n_objects):
        sop = ctx.uid("sop", 1, 0, k)
        ds = _instance(ctx, t, sop, k + 1)
        ds.AcquisitionDateTime = study.date_dicom + study.time
        ratio = 0.95 - 0.12 * k - 0.1 * ctx.rng.random()
        pa = 95 + 20 * np.sin(2 * np.pi * 1.2 * tt)
        pd = pa * ratio
        wf = Dataset()
        wf.MultiplexGroupTimeOffset = 0
        wf.WaveformOriginality = "ORIGINAL"
        wf.NumberOfWaveformChannels = 2
        wf.NumberOfWaveformSamples = samples
        wf.SamplingFrequency = 250
        wf.MultiplexGroupLabel = "PRESSURE"
        wf.ChannelDefinitionSequence = H.seq(_channel("Pa", "2:18944"), _channel("Pd", "2:18948"))
        wf.WaveformBitsAllocated = 16
        wf.WaveformSampleInterpretation = "SS"
        wf.WaveformData = np.stack([pa, pd], axis=1).round().astype("<i2").tobytes()
        ds.WaveformSequence = H.seq(wf)
        path = H.rel(_series_folder(ctx, 1, series), _file_name(ctx, k + 1, sop))
        H.write(ctx, path, ds)
        series.instances.append(Instance(sop, SOP["HD"], path, k + 1, kind="dicom_waveform"))
        ctx.record(path, "dicom_waveform", sop)


def write_images(ctx: CaseContext) -> None:
    """All image objects of one case, by the dataset's first registry modality (X-ray: CR or DX)."""
    mods = ctx.dataset.modalities
    tiny = ctx.tiny
    m = mods[ctx.rng.randrange(len(mods))] if set(mods) <= {"CR", "DX"} else mods[0]
    if m in ("CT", "MR"):
        write_volume(ctx, m, 1 if tiny or m == "CT" else 2)
    elif m in ("CR", "DX"):
        did = ctx.dataset.id
        n_studies = 2 if did == "hand-foot-xray-ra" and not tiny else 1
        per_study = 2 if did == "spine-xray-as" and not tiny else 1
        write_xray(ctx, m, n_studies, per_study)
    elif m in ("XA", "IVUS", "IVOCT", "NM"):
        write_cine(ctx, m, 1 if tiny or m != "XA" else 2)
    elif m == "OP":
        write_fundus(ctx, 1 if tiny else 2)
    elif m == "HD":
        write_waveform(ctx, 1 if tiny else 2)
    else:
        raise ValueError(f"synth: no image writer for modality {m!r} (dataset {ctx.dataset.id})")

"""Annotation objects in the registry's formats, pointing at the case's images by UID.

Each writer is told which kinds to carry (status.kinds_by_format) and writes exactly those, so
the truth's expected status follows from the files. Readers' names and patient identifiers go where
real annotation tools put them (ROI interpreter, SR observer and TEXT items, GSPS text, AIM person).
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from . import headers as H
from .context import CaseContext, Instance, Series
from .phantoms import circle_points, lesion_disk

RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"

FINDINGS = {  # dataset organ -> (finding, qualitative value, measurement name, unit, value range)
    "heart": (("Stenosis", "SCT", "415582006"), ("Moderate", "SCT", "6736007"), "Diameter stenosis", "%", (30, 80)),
    "brain": (("Mass", "SCT", "4147007"), ("Present", "SCT", "52101004"), "Long axis", "mm", (4, 30)),
    "lung": (("Nodule", "SCT", "27925004"), ("Solid", "SCT", "82334004"), "Long axis", "mm", (4, 25)),
    "other": (("Lesion", "SCT", "52988006"), ("Present", "SCT", "52101004"), "Long axis", "mm", (3, 40)),
}


def _target(ctx: CaseContext) -> Series:
    return ctx.studies[0].series[0]


def _lesion_instances(series: Series) -> list[Instance]:
    if len(series.instances) > 1 and series.instances[0].ipp is not None:   # a volume
        return [series.instances[k] for k in series.lesion_slices if k < len(series.instances)]
    return series.instances[:1]


def _ann_path(ctx: CaseContext, name: str) -> str:
    return H.rel("annotations", ctx.case_folder, name)


def _ref_image(inst: Instance, frame: int | None = None) -> Dataset:
    d = Dataset()
    d.ReferencedSOPClassUID = inst.sop_class
    d.ReferencedSOPInstanceUID = inst.sop_uid
    if frame is not None and inst.frames > 1:
        d.ReferencedFrameNumber = frame
    return d


def _finding(ctx: CaseContext):
    return FINDINGS.get(ctx.dataset.organ, FINDINGS["other"])


# ---------------------------------------------------------------------------------------------- RTSTRUCT
def write_rtstruct(ctx: CaseContext, kinds: tuple[str, ...]) -> str:
    series = _target(ctx)
    study = ctx.studies[0]
    sop = ctx.uid("rtstruct")
    where = "rtstruct"
    ds = H.annotation_header(ctx, RTSTRUCT, sop, study, "RTSTRUCT", ctx.uid("rtstruct-series"), 901,
                             "RTSTRUCT contours", where)
    ds.StructureSetLabel = "GTV_" + ctx.case_id.rsplit("-", 1)[-1]
    ds.StructureSetName = "Lesions"
    ds.StructureSetDate, ds.StructureSetTime = study.date_dicom, "160000"
    contour_images = [_ref_image(i) for i in series.instances]
    rt_series = Dataset()
    rt_series.SeriesInstanceUID = series.uid
    rt_series.ContourImageSequence = H.seq(*contour_images)
    rt_study = Dataset()
    rt_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"   # Detached Study Management
    rt_study.ReferencedSOPInstanceUID = study.uid
    rt_study.RTReferencedSeriesSequence = H.seq(rt_series)
    ref_for = Dataset()
    ref_for.FrameOfReferenceUID = series.frame_of_ref
    ref_for.RTReferencedStudySequence = H.seq(rt_study)
    ds.ReferencedFrameOfReferenceSequence = H.seq(ref_for)
    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = series.frame_of_ref
    roi.ROIName = "GTV1"
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = H.seq(roi)
    px = series.pixel_spacing[0]
    contours = []
    for inst in _lesion_instances(series):
        x0, y0, z = inst.ipp
        pts = circle_points(series.lesion_rc, series.lesion_radius)
        c = Dataset()
        c.ContourImageSequence = H.seq(_ref_image(inst))
        c.ContourGeometricType = "CLOSED_PLANAR"
        c.NumberOfContourPoints = len(pts)
        c.ContourData = [v for r, col in pts for v in (round(x0 + col * px, 2), round(y0 + r * px, 2), z)]
        contours.append(c)
    rc = Dataset()
    rc.ROIDisplayColor = [255, 0, 0]
    rc.ReferencedROINumber = 1
    rc.ContourSequence = H.seq(*contours)
    ds.ROIContourSequence = H.seq(rc)
    if "label" in kinds:
        obs = Dataset()
        obs.ObservationNumber = 1
        obs.ReferencedROINumber = 1
        obs.ROIObservationLabel = {"brain": "brain metastasis", "lung": "lung nodule"}.get(ctx.dataset.organ, "lesion")
        obs.RTROIInterpretedType = "GTV"
        reader = ctx.physician
        obs.ROIInterpreter = reader
        ctx.plant("physician", reader, "rtstruct:ROIInterpreter")
        ds.RTROIObservationsSequence = H.seq(obs)
    ds.ApprovalStatus = "UNAPPROVED"
    name = "RS." + sop + ".dcm" if ctx.rng.random() < 0.5 else f"RTSS_{ctx.case_id}.dcm"
    path = _ann_path(ctx, name)
    H.write(ctx, path, ds)
    ctx.record(path, "rtstruct", sop)
    return path


# ---------------------------------------------------------------------------------------------- SEG
def write_seg(ctx: CaseContext, kinds: tuple[str, ...]) -> str:
    """A BINARY DICOM Segmentation with one segment; frames only where the lesion is."""
    series = _target(ctx)
    study = ctx.studies[0]
    sop = ctx.uid("seg")
    where = "seg"
    ds = H.annotation_header(ctx, SEG, sop, study, "SEG", ctx.uid("seg-series"), 902, "Segmentation", where)
    ds.FrameOfReferenceUID = series.frame_of_ref
    ds.PositionReferenceIndicator = ""
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentLabel = "LESION"
    ds.ContentDescription = "calcium / plaque segmentation"
    reader = ctx.physician
    ds.ContentCreatorName = reader
    ctx.plant("physician", reader, "seg:ContentCreatorName")
    ds.SegmentationType = "BINARY"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.LossyImageCompression = "00"
    ds.Rows, ds.Columns = series.rows, series.cols
    seg = Dataset()
    seg.SegmentNumber = 1
    seg.SegmentLabel = "Calcified plaque" if ctx.dataset.organ == "heart" else "Lesion"
    seg.SegmentedPropertyCategoryCodeSequence = H.seq(H.code("49755003", "SCT", "Morphologically Altered Structure"))
    seg.SegmentedPropertyTypeCodeSequence = H.seq(H.code("52988006", "SCT", "Lesion"))
    seg.SegmentAlgorithmType = "MANUAL"
    ds.SegmentSequence = H.seq(seg)
    dim_uid = ctx.uid("seg-dimension")
    ds.DimensionOrganizationSequence = H.seq(Dataset())
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = dim_uid
    d1, d2 = Dataset(), Dataset()
    d1.DimensionOrganizationUID = d2.DimensionOrganizationUID = dim_uid
    d1.DimensionIndexPointer = 0x0062000B   # ReferencedSegmentNumber
    d1.FunctionalGroupPointer = 0x0062000A  # SegmentIdentificationSequence
    d2.DimensionIndexPointer = 0x00200032   # ImagePositionPatient
    d2.FunctionalGroupPointer = 0x00209113  # PlanePositionSequence
    ds.DimensionIndexSequence = H.seq(d1, d2)
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = list(series.orientation)
    measures = Dataset()
    measures.PixelSpacing = [round(series.pixel_spacing[0], 4), round(series.pixel_spacing[1], 4)]
    measures.SliceThickness = series.thickness
    shared.PlaneOrientationSequence = H.seq(orient)
    shared.PixelMeasuresSequence = H.seq(measures)
    ds.SharedFunctionalGroupsSequence = H.seq(shared)
    frames, per_frame = [], []
    disk = lesion_disk(series.rows, series.cols, series.lesion_rc, series.lesion_radius)
    for n, inst in enumerate(_lesion_instances(series), start=1):
        src = _ref_image(inst)
        src.PurposeOfReferenceCodeSequence = H.seq(H.code("121322", "DCM", "Source image for image processing operation"))
        der = Dataset()
        der.SourceImageSequence = H.seq(src)
        der.DerivationCodeSequence = H.seq(H.code("113076", "DCM", "Segmentation"))
        fc = Dataset()
        fc.DimensionIndexValues = [1, n]
        pp = Dataset()
        pp.ImagePositionPatient = list(inst.ipp) if inst.ipp else [0, 0, 0]
        si = Dataset()
        si.ReferencedSegmentNumber = 1
        item = Dataset()
        item.DerivationImageSequence = H.seq(der)
        item.FrameContentSequence = H.seq(fc)
        item.PlanePositionSequence = H.seq(pp)
        item.SegmentIdentificationSequence = H.seq(si)
        per_frame.append(item)
        frames.append(disk)
    ds.PerFrameFunctionalGroupsSequence = H.seq(*per_frame)
    ds.NumberOfFrames = len(frames)
    bits = np.packbits(np.stack(frames).astype(np.uint8).ravel(), bitorder="little").tobytes()
    ds.PixelData = bits + (b"\0" if len(bits) % 2 else b"")
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = series.uid
    ref_series.ReferencedInstanceSequence = H.seq(*[_ref_image(i) for i in _lesion_instances(series)])
    ds.ReferencedSeriesSequence = H.seq(ref_series)
    path = _ann_path(ctx, f"SEG_{sop[-12:]}.dcm")
    H.write(ctx, path, ds)
    ctx.record(path, "seg", sop)
    return path


# ---------------------------------------------------------------------------------------------- SR
def _item(rel: str, vt: str, concept: Dataset, **values) -> Dataset:
    d = Dataset()
    d.RelationshipType = rel
    d.ValueType = vt
    d.ConceptNameCodeSequence = H.seq(concept)
    for k, v in values.items():
        setattr(d, k, v)
    return d


def _sr_ref(inst: Instance) -> Dataset:
    return _ref_image(inst, frame=1)


def write_sr(ctx: CaseContext, kinds: tuple[str, ...]) -> str:
    """TID 1500 Measurement Report: image library, one measurement group, NUM and CODE items, a TEXT note."""
    series = _target(ctx)
    study = ctx.studies[0]
    sop = ctx.uid("sr")
    where = "sr"
    ds = H.annotation_header(ctx, COMPREHENSIVE_SR, sop, study, "SR", ctx.uid("sr-series"), 903,
                             "Measurement report", where)
    reader = ctx.physician
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ver = Dataset()
    ver.VerifyingObserverName = reader
    ver.VerifyingOrganization = ctx.site.institution
    ver.VerificationDateTime = study.date_dicom + "170000"
    ver.VerifyingObserverIdentificationCodeSequence = H.seq()
    ds.VerifyingObserverSequence = H.seq(ver)
    ctx.plant("physician", reader, "sr:VerifyingObserverName")
    targets = _lesion_instances(series)
    ev_series = Dataset()
    ev_series.SeriesInstanceUID = series.uid
    ev_series.ReferencedSOPSequence = H.seq(*[_ref_image(i) for i in series.instances])
    ev = Dataset()
    ev.StudyInstanceUID = study.uid
    ev.ReferencedSeriesSequence = H.seq(ev_series)
    ds.CurrentRequestedProcedureEvidenceSequence = H.seq(ev)
    ds.PerformedProcedureCodeSequence = H.seq()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = H.seq(H.code("126000", "DCM", "Imaging Measurement Report"))
    ds.ContinuityOfContent = "SEPARATE"
    tmpl = Dataset()
    tmpl.MappingResource, tmpl.TemplateIdentifier = "DCMR", "1500"
    ds.ContentTemplateSequence = H.seq(tmpl)

    waveform = series.instances[0].kind == "dicom_waveform"
    # COMPOSITE rather than WAVEFORM: same reference, and common SR toolkits (highdicom) parse it.
    vt_ref = "COMPOSITE" if waveform else "IMAGE"
    content = [
        _item("HAS CONCEPT MOD", "CODE", H.code("121049", "DCM", "Language of Content Item and Descendants"),
              ConceptCodeSequence=H.seq(H.code("en-US", "RFC5646", "English (United States)"))),
        _item("HAS OBS CONTEXT", "PNAME", H.code("121008", "DCM", "Person Observer Name"), PersonName=reader),
        _item("HAS CONCEPT MOD", "CODE", H.code("121058", "DCM", "Procedure reported"),
              ConceptCodeSequence=H.seq(H.code("77477000", "SCT", "CT of chest") if not waveform
                                        else H.code("433123005", "SCT", "Fractional flow reserve"))),
    ]
    ctx.plant("physician", reader, "sr:PersonObserverName")
    library_group = _item("CONTAINS", "CONTAINER", H.code("126200", "DCM", "Image Library Group"),
                          ContinuityOfContent="SEPARATE",
                          ContentSequence=H.seq(*[_item("CONTAINS", vt_ref, H.code("260753009", "SCT", "Source"),
                                                        ReferencedSOPSequence=H.seq(_sr_ref(i))) for i in targets]))
    content.append(_item("CONTAINS", "CONTAINER", H.code("111028", "DCM", "Image Library"),
                         ContinuityOfContent="SEPARATE", ContentSequence=H.seq(library_group)))
    finding, qual, mname, unit, (lo, hi) = _finding(ctx)
    if waveform:
        mname, unit, lo, hi = "Fractional flow reserve", "1", 0.6, 0.95
    group_items = [
        _item("HAS OBS CONTEXT", "TEXT", H.code("112039", "DCM", "Tracking Identifier"), TextValue="lesion 1"),
        _item("HAS OBS CONTEXT", "UIDREF", H.code("112040", "DCM", "Tracking Unique Identifier"),
              UID=ctx.uid("tracking", 1)),
    ]
    if "label" in kinds:
        group_items.append(_item("CONTAINS", "CODE", H.code("121071", "DCM", "Finding"),
                                 ConceptCodeSequence=H.seq(H.code(finding[2], finding[1], finding[0]))))
    if "measurement" in kinds:
        mv = Dataset()
        mv.NumericValue = round(ctx.rng.uniform(lo, hi), 2)
        mv.MeasurementUnitsCodeSequence = H.seq(H.code(unit, "UCUM", unit if unit != "1" else "no units"))
        num = _item("CONTAINS", "NUM", H.code("410668003" if unit != "1" else "433123005", "SCT", mname),
                    MeasuredValueSequence=H.seq(mv))
        num.ContentSequence = H.seq(_item("INFERRED FROM", vt_ref, H.code("260753009", "SCT", "Source"),
                                          ReferencedSOPSequence=H.seq(_sr_ref(targets[0]))))
        group_items.append(num)
    if "label" in kinds:
        group_items.append(_item("CONTAINS", "CODE", H.code("C00034375", "UMLS", "Qualitative Evaluations"),
                                 ConceptCodeSequence=H.seq(H.code(qual[2], qual[1], qual[0]))))
    group = _item("CONTAINS", "CONTAINER", H.code("125007", "DCM", "Measurement Group"),
                  ContinuityOfContent="SEPARATE", ContentSequence=H.seq(*group_items))
    tmpl1501 = Dataset()
    tmpl1501.MappingResource, tmpl1501.TemplateIdentifier = "DCMR", "1501"
    group.ContentTemplateSequence = H.seq(tmpl1501)
    content.append(_item("CONTAINS", "CONTAINER", H.code("126010", "DCM", "Imaging Measurements"),
                         ContinuityOfContent="SEPARATE", ContentSequence=H.seq(group)))
    p = ctx.patient
    note = f"Reviewed with {p.name_text} (chart {p.chart_no}) on follow-up."
    content.append(_item("CONTAINS", "TEXT", H.code("121106", "DCM", "Comment"), TextValue=note))
    ctx.plant("name_text", p.name_text, "sr:TEXT")
    ctx.plant("chart_no", p.chart_no, "sr:TEXT")
    ds.ContentSequence = H.seq(*content)
    path = _ann_path(ctx, f"SR_{ctx.case_id}_{len(ctx.objects)}.dcm")
    H.write(ctx, path, ds)
    ctx.record(path, "sr", sop)
    return path


# ---------------------------------------------------------------------------------------------- GSPS
def write_gsps(ctx: CaseContext, kinds: tuple[str, ...]) -> str:
    series = _target(ctx)
    study = ctx.studies[0]
    sop = ctx.uid("gsps")
    where = "presentation_state"
    ds = H.annotation_header(ctx, GSPS, sop, study, "PR", ctx.uid("gsps-series"), 904, "Annotations", where)
    ds.ContentLabel = "ANNOTATION"
    ds.ContentDescription = "reader marks"
    reader = ctx.physician
    ds.ContentCreatorName = reader
    ctx.plant("physician", reader, "presentation_state:ContentCreatorName")
    ds.PresentationCreationDate, ds.PresentationCreationTime = study.date_dicom, "161500"
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = series.uid
    ref_series.ReferencedImageSequence = H.seq(*[_ref_image(i) for i in series.instances])
    ds.ReferencedSeriesSequence = H.seq(ref_series)
    area = Dataset()
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [series.cols, series.rows]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelSpacing = [round(series.pixel_spacing[0], 4)] * 2
    ds.DisplayedAreaSelectionSequence = H.seq(area)
    layer = Dataset()
    layer.GraphicLayer, layer.GraphicLayerOrder = "ANNOTATION", 1
    ds.GraphicLayerSequence = H.seq(layer)
    annotations = []
    p = ctx.patient
    for n, inst in enumerate(_lesion_instances(series)):
        ann = Dataset()
        ann.ReferencedImageSequence = H.seq(_ref_image(inst))
        ann.GraphicLayer = "ANNOTATION"
        if "contour" in kinds:
            pts = circle_points(series.lesion_rc, series.lesion_radius)
            pts = pts + pts[:1]
            g = Dataset()
            g.GraphicAnnotationUnits = "PIXEL"
            g.GraphicDimensions = 2
            g.NumberOfGraphicPoints = len(pts)
            g.GraphicData = [v for r, c in pts for v in (c, r)]   # column, row order
            g.GraphicType = "POLYLINE"
            g.GraphicFilled = "N"
            ann.GraphicObjectSequence = H.seq(g)
        if "label" in kinds:
            t = Dataset()
            text = "aneurysm" if ctx.dataset.id == "aneurysm-mra" else "WMH / lacune"
            if n == 0:   # readers sign their marks with the patient they were reading
                text += f" - {p.name_text} {p.chart_no}"
                ctx.plant("name_text", p.name_text, "presentation_state:UnformattedTextValue")
                ctx.plant("chart_no", p.chart_no, "presentation_state:UnformattedTextValue")
            t.UnformattedTextValue = text
            t.AnchorPointAnnotationUnits = "PIXEL"
            t.AnchorPoint = [float(series.lesion_rc[1]), float(series.lesion_rc[0])]
            t.AnchorPointVisibility = "Y"
            t.BoundingBoxAnnotationUnits = "PIXEL"
            t.BoundingBoxTopLeftHandCorner = [1.0, 1.0]
            t.BoundingBoxBottomRightHandCorner = [float(series.cols), 12.0]
            t.BoundingBoxTextHorizontalJustification = "LEFT"
            ann.TextObjectSequence = H.seq(t)
        annotations.append(ann)
    ds.GraphicAnnotationSequence = H.seq(*annotations)
    ds.PresentationLUTShape = "IDENTITY"
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 600, 1200
    ds.SoftcopyVOILUTSequence = H.seq(voi)
    path = _ann_path(ctx, f"PR_{sop[-10:]}.dcm")
    H.write(ctx, path, ds)
    ctx.record(path, "presentation_state", sop)
    return path


# ---------------------------------------------------------------------------------------------- AIM
AIM_NS = "gme://caCORE.caCORE/4.4/edu.northwestern.radiology.AIM"


def _v(tag: str, value) -> str:
    return f"<{tag} value={quoteattr(str(value))}/>"


def write_aim(ctx: CaseContext, kinds: tuple[str, ...]) -> str:
    series = _target(ctx)
    study = ctx.studies[0]
    inst = _lesion_instances(series)[0]
    p = ctx.patient
    reader = ctx.physician
    finding, qual, mname, unit, (lo, hi) = _finding(ctx)
    when = study.date_dicom + "163000"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<ImageAnnotationCollection xmlns="{AIM_NS}" xmlns:iso="uri:iso.org:21090" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" aimVersion="AIMv4_0">',
        f'<uniqueIdentifier root="{ctx.uid("aim-collection")}"/>', _v("dateTime", when),
        f"<user>{_v('name', reader)}{_v('loginName', reader.split('^')[0].lower() + '01')}"
        f"{_v('roleInTrial', 'Performing')}{_v('numberWithinRoleOfClinicalTrial', 1)}</user>",
        f"<equipment>{_v('manufacturerName', 'RID')}{_v('manufacturerModelName', 'RID Filter')}"
        f"{_v('softwareVersion', '4.2')}</equipment>",
        f"<person>{_v('name', p.name_dicom)}{_v('id', p.chart_no)}"
        f"{_v('birthDate', p.birth_date.isoformat() + 'T00:00:00')}{_v('sex', p.sex)}</person>",
        "<imageAnnotations><ImageAnnotation>",
        f'<uniqueIdentifier root="{ctx.uid("aim-annotation")}"/>',
        f'<typeCode code="{finding[2]}" codeSystemName="{finding[1]}"><iso:displayName value="{finding[0]}"/></typeCode>',
        _v("dateTime", when), _v("name", f"{finding[0]} 1"), _v("comment", f"{ctx.dataset.id} reader annotation"),
    ]
    ctx.plant("physician", reader, "aim:user")
    ctx.plant("name_dicom", p.name_dicom, "aim:person")
    ctx.plant("chart_no", p.chart_no, "aim:person")
    ctx.plant("birth_date_iso", p.birth_date.isoformat(), "aim:person")
    if "measurement" in kinds:
        value = round(ctx.rng.uniform(lo, hi), 1)
        parts.append(
            "<calculationEntityCollection><CalculationEntity>"
            f'<uniqueIdentifier root="{ctx.uid("aim-calc")}"/>'
            f'<typeCode code="RID50" codeSystemName="RadLex"><iso:displayName value={quoteattr(mname)}/></typeCode>'
            f"{_v('description', mname)}"
            '<calculationResultCollection><CalculationResult xsi:type="CompactCalculationResult" type="Scalar" '
            f'unitOfMeasure="{unit}" dataType="double">{_v("value", value)}</CalculationResult>'
            "</calculationResultCollection></CalculationEntity></calculationEntityCollection>")
    if "label" in kinds:
        parts.append(
            "<imagingObservationEntityCollection><ImagingObservationEntity>"
            f'<uniqueIdentifier root="{ctx.uid("aim-obs")}"/>'
            f'<typeCode code="{qual[2]}" codeSystemName="{qual[1]}"><iso:displayName value="{qual[0]}"/></typeCode>'
            f"{_v('label', qual[0])}{_v('isPresent', 'true')}"
            "</ImagingObservationEntity></imagingObservationEntityCollection>")
    if "contour" in kinds:
        coords = "".join(
            f"<TwoDimensionSpatialCoordinate>{_v('coordinateIndex', n)}{_v('x', c)}{_v('y', r)}</TwoDimensionSpatialCoordinate>"
            for n, (r, c) in enumerate(circle_points(series.lesion_rc, series.lesion_radius)))
        parts.append(
            '<markupEntityCollection><MarkupEntity xsi:type="TwoDimensionPolyline">'
            f'<uniqueIdentifier root="{ctx.uid("aim-markup")}"/>{_v("shapeIdentifier", 1)}{_v("includeFlag", "true")}'
            f'<imageReferenceUid root="{inst.sop_uid}"/>{_v("referencedFrameNumber", 1)}'
            f"<twoDimensionSpatialCoordinateCollection>{coords}</twoDimensionSpatialCoordinateCollection>"
            "</MarkupEntity></markupEntityCollection>")
    parts.append(
        '<imageReferenceEntityCollection><ImageReferenceEntity xsi:type="DicomImageReferenceEntity">'
        f'<uniqueIdentifier root="{ctx.uid("aim-ref")}"/><imageStudy><instanceUid root="{study.uid}"/>'
        f"{_v('startDate', study.date_dicom + '000000')}{_v('startTime', study.time)}"
        f'<imageSeries><instanceUid root="{series.uid}"/><modality code="{series.modality}" '
        'codeSystemName="DCM"/><imageCollection>'
        + "".join(f'<Image><sopClassUid root="{i.sop_class}"/><sopInstanceUid root="{i.sop_uid}"/></Image>'
                  for i in _lesion_instances(series))
        + "</imageCollection></imageSeries></imageStudy></ImageReferenceEntity></imageReferenceEntityCollection>")
    parts.append("</ImageAnnotation></imageAnnotations></ImageAnnotationCollection>")
    if ctx.rng.random() < 0.4:
        name = f"{p.name_file}_{ctx.case_id}.xml"
        ctx.plant("name_file", p.name_file, "path")
    else:
        name = f"AIM_{ctx.case_id}.xml"
    path = _ann_path(ctx, name)
    out = ctx.batch_dir / path
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts) + "\n", encoding="utf-8")
    ctx.record(path, "aim", None)
    return path


# ---------------------------------------------------------------------------------------------- masks
def write_masks(ctx: CaseContext, kinds: tuple[str, ...]) -> list[str]:
    """PNG per lesion slice (<SOPInstanceUID>__<label>.png) or one NIfTI per series (<SeriesUID>__<label>.nii.gz)."""
    series = _target(ctx)
    label = "left_atrium" if ctx.dataset.id == "af-cardiac-ct" else "lesion"
    disk = lesion_disk(series.rows, series.cols, series.lesion_rc, series.lesion_radius)
    volume = len(series.instances) > 1 and series.instances[0].ipp is not None
    paths = []
    if volume and ctx.rng.random() < 0.4:
        import SimpleITK as sitk   # imported lazily: only NIfTI masks need it
        arr = np.zeros((len(series.instances), series.rows, series.cols), dtype=np.uint8)
        for k in series.lesion_slices:
            arr[k][disk] = 1
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((series.pixel_spacing[1], series.pixel_spacing[0], series.thickness))
        img.SetOrigin(series.instances[0].ipp)
        img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
        path = _ann_path(ctx, f"{series.uid}__{label}.nii.gz")
        (ctx.batch_dir / path).parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(ctx.batch_dir / path), useCompression=True)
        ctx.record(path, "mask_image", None)
        return [path]
    for inst in _lesion_instances(series):
        path = _ann_path(ctx, f"{inst.sop_uid}__{label}.png")
        (ctx.batch_dir / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((disk * 255).astype(np.uint8), mode="L").save(ctx.batch_dir / path, optimize=False)
        ctx.record(path, "mask_image", inst.sop_uid)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------- label sheets
SHEETS = {  # dataset -> (label rows, measurement rows, region choices)
    "lung-xray": ([("icd10", "J18.9"), ("icd10", "R91.8"), ("diagnosis", "pneumonia")], [], [""]),
    "fundus-glaucoma": ([("diagnosis", "glaucoma suspect"), ("rnfl_defect", "present")],
                        [("cup_disc_ratio", (0.3, 0.9)), ("iop_mmhg", (10, 32))], ["OD", "OS"]),
    "spine-xray-as": ([("syndesmophyte", "present"), ("sacroiliitis_grade", "grade 3")],
                      [("mSASSS", (0, 72)), ("bridging_count", (0, 6))], ["C2-C3", "L1-L2", "SIJ"]),
    "hand-foot-xray-ra": ([("erosion", "present"), ("jsn", "moderate")],
                          [("sharp_score", (0, 100)), ("erosion_score", (0, 50))], ["MCP2", "PIP3", "MTP5"]),
}


def sheet_rows(ctx: CaseContext, kinds: tuple[str, ...], target_col: str) -> list[dict]:
    labels, measures, regions = SHEETS.get(ctx.dataset.id, ([("finding", "present")], [("size_mm", (2, 30))], [""]))
    reader = ctx.physician
    ctx.plant("physician", reader, "label_sheet:reader")
    series = _target(ctx)
    target = {"case_id": ctx.case_id, "study_instance_uid": ctx.studies[0].uid,
              "sop_instance_uid": series.instances[0].sop_uid}[target_col]
    p = ctx.patient
    base = {target_col: target, "reader": reader, "read_date": ctx.studies[0].date.isoformat(),
            "patient_id": p.chart_no, "patient_name": p.name_zh if ctx.chinese else p.name_dicom}
    rows = []
    if "label" in kinds:
        for lab, val in labels[:2]:
            rows.append({**base, "label": lab, "value": val, "region": ctx.rng.choice(regions)})
    if "measurement" in kinds:
        for lab, (lo, hi) in measures:
            v = round(ctx.rng.uniform(lo, hi), 2 if hi < 5 else 0)
            rows.append({**base, "label": lab, "value": str(v if hi < 5 else int(v)), "region": ctx.rng.choice(regions)})
    return rows


def sheet_columns(target_col: str, with_id: bool, with_name: bool) -> list[str]:
    cols = [target_col]
    if with_id:
        cols.append("patient_id")
    if with_name:
        cols.append("patient_name")
    return cols + ["label", "value", "region", "reader", "read_date"]


def plant_sheet_identifiers(ctx: CaseContext, with_id: bool, with_name: bool) -> None:
    p = ctx.patient
    if with_id:
        ctx.plant("chart_no", p.chart_no, "label_sheet:patient_id")
    if with_name:
        ctx.plant("name_zh" if ctx.chinese else "name_dicom", p.name_zh if ctx.chinese else p.name_dicom,
                  "label_sheet:patient_name")


def csv_bytes(columns: list[str], rows: list[dict], bom: bool) -> bytes:
    import csv
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8")


def xlsx_bytes(columns: list[str], rows: list[dict]) -> bytes:
    """An xlsx with fixed document dates and zip timestamps (openpyxl stamps both with 'now')."""
    import datetime as dt

    from openpyxl import Workbook
    wb = Workbook()
    fixed = dt.datetime(2019, 1, 1, 0, 0, 0)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "Excel VBA export"
    ws = wb.active
    ws.title = "labels"
    ws.append(columns)
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if c == "value":
                try:
                    v = float(v) if "." in v else int(v)
                except ValueError:
                    pass
            cells.append(v)
        ws.append(cells)
    raw = io.BytesIO()
    wb.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "docProps/core.xml":
                import re
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2019-01-01T00:00:00Z", data)
            zi = zipfile.ZipInfo(info.filename, date_time=(2019, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(zi, data)
    return out.getvalue()


def write_case_sheet(ctx: CaseContext, kinds: tuple[str, ...]) -> str:
    """Per-case Excel sheet (the RA / AS teams export one workbook per patient from their viewer plug-in)."""
    with_id = ctx.rng.random() < 0.5
    with_name = ctx.rng.random() < 0.6
    target_col = "sop_instance_uid"
    rows = sheet_rows(ctx, kinds, target_col)
    plant_sheet_identifiers(ctx, with_id, with_name)
    path = _ann_path(ctx, f"labels_{ctx.case_id}.xlsx")
    out = ctx.batch_dir / path
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(xlsx_bytes(sheet_columns(target_col, with_id, with_name), rows))
    ctx.record(path, "label_sheet", None)
    return path


WRITERS = {"rtstruct": write_rtstruct, "seg": write_seg, "sr": write_sr, "presentation_state": write_gsps,
           "aim": write_aim, "mask_image": write_masks}

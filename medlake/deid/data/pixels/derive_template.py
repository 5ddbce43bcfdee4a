"""Regenerate mean_reg2mean_2mm.nii.gz from pydeface 2.1.0's mean_reg2mean.nii.gz (see PROVENANCE.md).

    pip download --no-deps pydeface==2.1.0 && unzip -j pydeface-2.1.0-py3-none-any.whl 'pydeface/data/*'
    python derive_template.py mean_reg2mean.nii.gz
"""

import sys
from pathlib import Path

import SimpleITK as sitk

from medlake.deid.deface import _resample_iso

if __name__ == "__main__":
    source = sitk.ReadImage(sys.argv[1], sitk.sitkFloat32)
    # The 2 mm grid registration runs on, kept in float32: rescaling to integers moves the
    # background off zero, which shifts the intensity normalisation the registration relies on.
    out = _resample_iso(source, 2.0)
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(Path(__file__).parent / "mean_reg2mean_2mm.nii.gz"))
    writer.SetUseCompression(True)
    writer.Execute(out)

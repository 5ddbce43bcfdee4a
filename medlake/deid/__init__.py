"""De-identification: PS3.15 Annex E basic profile with options, keyed pseudonyms, fast file path.

Pixel cleaning, defacing and whole-slide images live in pixels.py, deface.py and wsi.py.
"""

from medlake.deid.context import DEFAULT_OPTIONS, SAFE_PRIVATE_NONE, AgeRule, DeidContext, SafePrivateTag
from medlake.deid.errors import DeidError
from medlake.deid.files import deidentify_dataset, deidentify_file
from medlake.deid.keys import DeidKeys
from medlake.deid.profile import deidentify
from medlake.deid.report import DeidReport
from medlake.deid.table import Action, Option, ProfileTable, Rule, load_table

__all__ = [
    "Action", "AgeRule", "DEFAULT_OPTIONS", "DeidContext", "DeidError", "DeidKeys", "DeidReport",
    "Option", "ProfileTable", "Rule", "SAFE_PRIVATE_NONE", "SafePrivateTag", "deidentify",
    "deidentify_dataset", "deidentify_file", "load_table",
]

"""Files shipped inside the distribution (package data), found through importlib.resources.

An installed medlake has no checkout beside it, so nothing may be found from __file__ or a
repository path; pyproject.toml's package-data lists these files, and tests/test_installed_wheel.py
checks that the wheel carries them.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
from importlib import resources
from pathlib import Path

# as_file extracts a file to a temporary copy when the package is not on a file system (a zip
# import); the copy must outlive the caller, since paths are handed to SimpleITK, Dagster resources
# and subprocesses, so every context stays open until the interpreter exits.
_kept_open = contextlib.ExitStack()
atexit.register(_kept_open.close)


class PackagedFileMissing(FileNotFoundError):
    """The installation lacks a file it ships: a broken install or a build without package-data."""


@functools.cache
def packaged_file(package: str, name: str) -> Path:
    """A real path to `name` ("data/x.csv", "/"-separated) inside the importable `package`."""
    ref = resources.files(package)
    for part in name.split("/"):
        ref = ref / part
    if not ref.is_file():
        raise PackagedFileMissing(f"{name} is missing from the installed {package} package "
                                  "(reinstall medlake; a wheel built without its package data lacks it)")
    return _kept_open.enter_context(resources.as_file(ref))

"""Where things live: the environment variables of DESIGN.md "Interfaces", resolved once.

Every location is optional and defaults under `./medlake-data/`; the lake and the releases may be
`s3://` URIs. The secret key is never given a default here: only `medlake demo` makes one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from medlake.packaged import packaged_file

DEFAULT_HOME = "medlake-data"
# The checkout's config/program.yaml is a symlink to this file, so both name one registry.
DEFAULT_REGISTRY = ("medlake.program", "default_program.yaml")
SECRET_KEY_ENV = "MEDLAKE_SECRET_KEY"
MIN_SECRET_KEY_CHARS = 32


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    home: str
    landing: str
    lake: str
    releases: str
    program: str
    dagster_home: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = env.get("MEDLAKE_HOME") or DEFAULT_HOME
        program = env.get("MEDLAKE_PROGRAM") or (
            "config/program.yaml" if Path("config/program.yaml").is_file() else str(default_registry())
        )
        return cls(
            home=home,
            landing=env.get("MEDLAKE_LANDING") or f"{home}/landing",
            lake=env.get("MEDLAKE_LAKE") or f"{home}/lake",
            releases=env.get("MEDLAKE_RELEASES") or f"{home}/releases",
            program=program,
            dagster_home=env.get("DAGSTER_HOME") or f"{home}/dagster",
        )

    def absolute(self) -> Settings:
        """Local paths made absolute, so that subprocesses and Dagster runs agree on them."""

        def fix(p: str) -> str:
            return p if "://" in p else str(Path(p).resolve())

        return Settings(*(fix(v) for v in (self.home, self.landing, self.lake, self.releases,
                                            self.program, self.dagster_home)))


def default_registry() -> Path:
    """The programme registry shipped with medlake (the 2019 programme), wherever it is installed."""
    return packaged_file(*DEFAULT_REGISTRY)


def secret_key(env: dict[str, str] | None = None) -> bytes:
    """The pseudonymisation key from MEDLAKE_SECRET_KEY; refuses to guess one."""
    value = (os.environ if env is None else env).get(SECRET_KEY_ENV, "")
    if not value:
        raise SettingsError(
            f"{SECRET_KEY_ENV} is not set: pseudonyms, UIDs and date shifts are derived from it. "
            f"Set it to at least {MIN_SECRET_KEY_CHARS} random characters and keep it with the "
            "restricted zone's backups (`medlake demo` makes its own)."
        )
    if len(value) < MIN_SECRET_KEY_CHARS:
        raise SettingsError(f"{SECRET_KEY_ENV} is too short: use at least {MIN_SECRET_KEY_CHARS} characters")
    return value.encode("utf-8")


UMASK_ENV = "MEDLAKE_UMASK"


def process_umask(env: dict[str, str] | None = None) -> int:
    """The umask medlake's processes create files with: owner-only (077) unless MEDLAKE_UMASK opens
    the shareable zones to a group (027, say). The restricted zone and Dagster's folder stay
    owner-only either way."""
    value = (os.environ if env is None else env).get(UMASK_ENV, "")
    if not value:
        return 0o077
    try:
        mask = int(value, 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise SettingsError(f"{UMASK_ENV}={value!r}: expected an octal umask such as 077 or 027")
    return mask


def ensure_demo_key(key_file: Path) -> tuple[str, bool]:
    """Read the demo's key from `key_file`, creating it (mode 600, in a folder of mode 700) on
    first use.

    Returns the key and whether it was created now, so the caller can say so.
    """
    from medlake.lake.zones import owner_only_folder

    owner_only_folder(key_file.parent)
    if key_file.is_file():
        if key_file.stat().st_mode & 0o077:
            key_file.chmod(0o600)
        return key_file.read_text().strip(), False
    key = secrets.token_hex(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, True

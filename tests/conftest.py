from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Started in the background by a non-interactive shell (`make test &`), the test process ignores
# SIGINT. Dagster maps SIGTERM to SIGINT's handler, so every worker it starts from here would ignore
# SIGTERM too, and the `tail` that captures each step's logs would outlive its step by 60 seconds
# (dask workers, tests/test_distributed.py). Interrupts behave as they do in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from medlake.lake.tables import table_named  # noqa: E402
from medlake.ingest.batch import ingest_batch  # noqa: E402
from medlake.lake import DeltaStore, Lake  # noqa: E402
from medlake.landing import BatchRef, LandingZone  # noqa: E402
from medlake.program import load_registry  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TEST_SECRET_KEY = "medlake-test-key-0123456789abcdef0123456789"
# Assets read the key from the environment, as in production; tests that need it absent remove it.
os.environ.setdefault("MEDLAKE_SECRET_KEY", TEST_SECRET_KEY)
REGISTRY_PATH = REPO / "config" / "program.yaml"


@pytest.fixture(scope="session")
def registry():
    return load_registry(REGISTRY_PATH)


@dataclass
class Lakehouse:
    """A landing zone and a lake under tmp_path, as medlake sees them."""

    root: Path
    registry: object

    @property
    def landing_root(self) -> Path:
        return self.root / "landing"

    @property
    def landing(self) -> LandingZone:
        return LandingZone(self.landing_root)

    @property
    def store(self) -> DeltaStore:
        return DeltaStore(Lake.from_root(str(self.root / "lake")))

    def batch_dir(self, team: str, dataset: str, batch: str) -> Path:
        d = self.landing_root / team / dataset / batch
        d.mkdir(parents=True, exist_ok=True)
        return d

    def ingest(self, team: str, dataset: str, batch: str):
        return ingest_batch(self.landing, self.store, self.registry, BatchRef(team, dataset, batch))

    def rows(self, table: str, **equals) -> list[dict]:
        rows = self.store.read(table_named("restricted", table)).to_pylist()
        return [r for r in rows if all(r[k] == v for k, v in equals.items())]


@pytest.fixture
def lakehouse(tmp_path, registry) -> Lakehouse:
    return Lakehouse(tmp_path, registry)


@pytest.fixture
def lakehouse_factory(tmp_path, registry):
    """Fresh lakehouses within one test (each in its own folder under tmp_path)."""
    made = []

    def make() -> Lakehouse:
        root = tmp_path / f"lakehouse-{len(made)}"
        root.mkdir()
        made.append(Lakehouse(root, registry))
        return made[-1]
    return make


def registry_with(registry, dataset_id: str, **changes):
    """The registry with one dataset's fields changed, validated afresh (model_copy would keep the
    cached lookups of the original)."""
    data = registry.model_dump()
    for d in data["datasets"]:
        if d["id"] == dataset_id:
            d.update(changes)
    return type(registry).model_validate(data)

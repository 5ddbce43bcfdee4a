"""The programme registry (config/program.yaml): teams, datasets, targets and sharing policy."""

from medlake.program.registry import (
    ANNOTATION_FORMATS,
    ANNOTATION_KINDS,
    Dataset,
    DatasetPart,
    Programme,
    Registry,
    RegistryError,
    Team,
    load_registry,
)

__all__ = [
    "ANNOTATION_FORMATS",
    "ANNOTATION_KINDS",
    "Dataset",
    "DatasetPart",
    "Programme",
    "Registry",
    "RegistryError",
    "Team",
    "load_registry",
]

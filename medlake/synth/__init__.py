"""Deterministic synthetic hospital exports (shared/EXPORT_FORMAT.md) with a truth file of every
identifier planted, for ingestion, de-identification and scale tests. No Dagster, no downloads.

    from medlake.program import load_registry
    from medlake.synth import SynthSpec, generate
    report = generate(Path("landing"), load_registry("config/program.yaml"), SynthSpec(cases=4, seed=1))
"""

from .generate import SynthReport, SynthSpec, generate, plan
from .identities import national_id_valid
from .phantoms import head_phantom
from .status import kinds_by_format, possible_statuses
from .truth import load_truth

__all__ = ["SynthSpec", "SynthReport", "generate", "plan", "head_phantom", "load_truth", "possible_statuses",
           "kinds_by_format", "national_id_valid"]

"""`python -m bench [NAME] [options]`: run one benchmark (or all) and write bench/results/."""

import sys

from bench import annotations, catalog, deface, deid, fullscale, ingest, progress, releases, validation

BENCHES = {"ingest": ingest.main, "deid": deid.main, "deface": deface.main,
           "validation": validation.main, "annotations": annotations.main,
           "catalog": catalog.main, "progress": progress.main, "releases": releases.main,
           "fullscale": fullscale.main}

if __name__ == "__main__":
    args = sys.argv[1:]
    names = [args.pop(0)] if args and args[0] in BENCHES else list(BENCHES)
    for name in names:
        sys.argv = [f"bench {name}", *args]
        BENCHES[name]()

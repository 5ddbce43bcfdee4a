"""What is published now: the latest version of every release folder, from its release.json."""

from __future__ import annotations

import json
from pathlib import Path


def releases_summary(root: str | Path) -> list[dict]:
    """One row per tier release (tier, team, dataset) and per application release, latest version."""
    rows = []
    for link in sorted(Path(root).glob("*/*/*/latest")) + sorted(Path(root).glob("applications/*/latest")):
        try:
            meta = json.loads((link / "release.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "application_id" in meta:
            rows.append({"release": f"applications/{meta['application_id']}", "version": meta["version"],
                         "released_on": meta["released_on"],
                         "cases": sum(d["cases"] for d in meta["datasets"].values()),
                         "contents": ", ".join(sorted(meta["datasets"])), "k": ""})
        else:
            k = meta["k_anonymity"]
            rows.append({"release": f"{meta['tier']}/{meta['team']}/{meta['dataset']}", "version": meta["version"],
                         "released_on": meta["released_on"], "cases": meta["counts"]["cases"],
                         "contents": meta["release_content"].replace("_", " "),
                         "k": f"{k['k_after'] or '-'} (>= {k['k']}, {k['suppressed']} suppressed)"})
    return rows

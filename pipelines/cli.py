"""The `medlake` command line: demo, run, synth, status."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from medlake.program import RegistryError, load_registry
from medlake.settings import SECRET_KEY_ENV, Settings, SettingsError, ensure_demo_key, process_umask, secret_key

# Piped output (CI logs, `| less`) gets a width that fits the summary tables instead of 80 columns.
# Text from data (names, paths, query values, messages quoting them) goes through escape() or Text:
# rich would read a `[/]` in it as markup and fail. No emoji codes either, which escape() leaves.
console = Console(width=None if sys.stdout.isatty() else 132, emoji=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 132, emoji=False)

DEMO_CASES = 4
DEMO_SEED = 2019
DEMO_AS_OF = "2019-09-15"


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]medlake:[/] {escape(message)}")
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="medlake")
def main() -> None:
    """medlake: ingest hospital imaging exports, de-identify them and track the programme.

    Locations come from MEDLAKE_HOME, MEDLAKE_LANDING, MEDLAKE_LAKE, MEDLAKE_RELEASES and
    MEDLAKE_PROGRAM (defaults under ./medlake-data/); see the README.
    """
    try:
        os.umask(process_umask())
    except SettingsError as e:
        _fail(str(e))


# `medlake run` while another holds the lake: EX_TEMPFAIL, so cron and service managers retry later.
EXIT_BUSY = 75


@main.command()
@click.option("--wait", "wait", type=float, default=0, show_default=True, metavar="SECONDS",
              help="When another `medlake run` holds the lake, wait this long for it (-1: as long as it "
                   "takes) instead of refusing at once.")
def run(wait: float) -> None:
    """Materialise everything for what is landed now (new or changed batches), in process.

    Exit status 0 only when every asset and blocking check passed; 1 when a run failed; 75 when
    another `medlake run` holds the lake; 143 or 130 when stopped by SIGTERM or SIGINT.
    """
    settings = Settings.from_env()
    try:
        secret_key()
    except SettingsError as e:
        _fail(str(e))
    sys.exit(_run(settings, wait=None if wait < 0 else wait))


def _run(settings: Settings, wait: float | None = 0) -> int:
    from medlake.lake import Lake
    from medlake.lake.locks import LockBusy
    from pipelines.interrupts import Interrupted, Interrupts

    try:
        load_registry(settings.program)
    except RegistryError as e:
        _fail(str(e))
    s = settings.absolute()
    try:
        with Interrupts() as interrupts, Lake.from_root(s.lake).locks().hold("run", "medlake run", wait=wait):
            return _run_locked(settings, s, interrupts)
    except LockBusy as e:
        h = e.holder
        who = (f"process {h.get('pid')} on {h.get('host')}, started {h.get('since')}" if h else "another process")
        err.print(f"[bold red]medlake:[/] another `medlake run` is working on the lake {escape(s.lake)} "
                  f"({escape(who)}). Nothing was done. Run again when it has finished, or pass --wait.")
        return EXIT_BUSY
    except Interrupted as e:
        err.print(f"[red]Stopped by {e}.[/] What was interrupted runs again on the next `medlake run`.")
        return e.exit_status


def _run_locked(settings: Settings, s: Settings, interrupts) -> int:
    from medlake.ingest.pending import pending_batches
    from medlake.lake import DeltaStore, Lake
    from medlake.lake.objects import StorageError
    from medlake.landing import open_landing
    from medlake.progress.stale import programme_stale

    store, landing = DeltaStore(Lake.from_root(s.lake)), open_landing(s.landing)
    try:
        pending = pending_batches(landing, store)
    except StorageError as e:
        _fail(str(e))
    todo = len(pending)
    if todo == 0 and not programme_stale(store, landing):
        console.print(f"Nothing new in the landing zone {escape(s.landing)}.")
        return 0
    from pipelines.runner import run_pending  # Dagster costs a second to import: only when there is work

    if todo == 0:
        console.print("No new batch; consent or application files changed: refreshing the programme.")
        report = run_pending(settings, pending=pending, interrupts=interrupts)
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as bar:
            task = bar.add_task("processing export batches", total=todo)
            state = {"n": 0}

            def start(key: str, files: int) -> None:
                bar.update(task, description=f"ingest, de-identify, check {escape(key)} ({files} files)")

            def done(outcome) -> None:
                state["n"] += 1
                bar.update(task, completed=state["n"])
                if not outcome.ok:
                    bar.console.print(_failure_line(outcome), soft_wrap=True)

            report = run_pending(settings, on_batch_start=start, on_batch_done=done, pending=pending,
                                 interrupts=interrupts)
            bar.update(task, description="processing export batches")
    return _summarise_run(report)


def _failure_line(outcome) -> str:
    where = f" at step {', '.join(outcome.failed_steps)}" if outcome.failed_steps else ""
    return (f"[red]failed:[/] {escape(outcome.name)}{escape(where)} (run {outcome.run_id}); "
            f"see why: medlake log {outcome.run_id}")


def _summarise_run(report) -> int:
    """One line per thing that happened, none claiming what did not; the exit status to match."""
    from pipelines.interrupts import Interrupted

    ok_batches = sum(b.ok for b in report.batches)
    if report.batches:
        console.print(f"{ok_batches} of {len(report.batches)} batch runs succeeded.")
    p = report.programme
    if p is not None and p.ok:
        console.print("Programme tables, dashboard and catalogue refreshed.")
    elif p is not None:
        err.print(_failure_line(p) + " [red]The dashboard, catalogue and releases were not brought up to "
                  "date.[/]", soft_wrap=True)
    elif report.interrupted_by is None and report.batches:
        err.print("[red]The programme was not refreshed.[/]")
    if report.interrupted_by is not None:
        stop = Interrupted(report.interrupted_by)
        err.print(f"[red]Stopped by {stop}.[/] What was interrupted runs again on the next `medlake run`.")
        return stop.exit_status
    return 0 if report.ok else 1


@main.command()
@click.argument("run_id")
def log(run_id: str) -> None:
    """Why a Dagster run failed: each failed step with its error (the run ids `medlake run` prints)."""
    from pipelines.runner import dagster_instance

    with dagster_instance(Settings.from_env()) as instance:
        if instance.get_run_by_id(run_id) is None:
            _fail(f"no run {run_id} in the Dagster instance {Settings.from_env().absolute().dagster_home}")
        failures = [e for e in instance.all_logs(run_id) if e.dagster_event is not None
                    and (e.dagster_event.is_step_failure or e.dagster_event.is_run_failure)]
        if not failures:
            console.print(f"Run {run_id} has no failed step.")
            return
        for e in failures:
            data = e.dagster_event.event_specific_data
            error = getattr(data, "error", None)
            step = e.step_key or "(run)"
            console.print(Text(f"{step}: {e.dagster_event.message or ''}", style="bold red"))
            if error is not None:
                console.print(Text("".join(error.to_string().splitlines(keepends=True)[-40:])))


@main.command()
@click.option("--cases", default=DEMO_CASES, show_default=True, help="Cases per dataset.")
@click.option("--seed", default=DEMO_SEED, show_default=True, help="Seed of the synthetic programme.")
@click.option("--datasets", default="", help="Comma-separated dataset ids (default: every dataset).")
def demo(cases: int, seed: int, datasets: str) -> None:
    """Synthesise a small programme (every dataset, or those --datasets names) into the landing zone,
    run everything, and print what was built and where to look."""
    # The synthetic programme mirrors the 2019 report, so its figures are shown as of the report's date.
    os.environ.setdefault("MEDLAKE_AS_OF", DEMO_AS_OF)
    settings = Settings.from_env()
    s = settings.absolute()
    # Checked before the demo key is made: a mistyped dataset leaves nothing behind.
    try:
        registry = load_registry(s.program)
    except RegistryError as e:
        _fail(str(e))
    chosen = _dataset_ids(datasets, registry, s.program)
    if not os.environ.get(SECRET_KEY_ENV):
        from medlake.lake import Lake

        restricted = Lake.from_root(s.lake).zone_root("restricted")
        if "://" in restricted:
            _fail(f"set {SECRET_KEY_ENV}: the demo only makes its own key for a local lake")
        key_file = Path(restricted) / "_secret_key"
        key, created = ensure_demo_key(key_file)
        os.environ[SECRET_KEY_ENV] = key
        console.print(f"{'Made' if created else 'Using'} a demo secret key at {escape(str(key_file))} "
                      f"(demo only: for real data set {SECRET_KEY_ENV}).")
    truth = Path(s.landing) / "_synth" / "truth.json"
    if truth.is_file():
        console.print(f"Landing zone {escape(s.landing)} already holds the synthetic programme; not regenerating.")
    else:
        _synthesise(Path(s.landing), registry, cases=cases, seed=seed, tiny=False, batches=1, datasets=chosen,
                    truth=None)
    code = _run(settings)
    _print_summary(s)
    _print_releases(s)
    lake = escape(s.lake)
    console.print("\n[bold]Where to look[/]")
    console.print(f"  landing zone (synthetic exports): {escape(s.landing)}")
    console.print(f"  truth file of planted identifiers: {escape(str(truth))}")
    console.print(f"  restricted zone (identifiers):   {lake}/restricted/  (landed_files, source_instances, "
                  "source_cases, quarantine, batches, vault)")
    console.print(f"  de-identified zone:              {lake}/deid/  (objects/, instances, slides, "
                  "annotation_files, deid_audit)")
    console.print(f"  cases and annotations:           {lake}/deid/cases, deid/annotations, deid/annotation_problems")
    console.print(f"  identifier checks, validations:  {lake}/program/identifier_checks, program/validation_history")
    console.print(f"  Dagster runs:                    {escape(s.dagster_home)}  (make ui, then http://127.0.0.1:3000)")
    console.print(f"  dashboard (open in a browser):   {lake}/program/dashboard/index.html  (medlake dashboard)")
    console.print(f"  Parquet catalogue and DuckDB:    {lake}/catalog/  (medlake query \"SELECT count(*) FROM cases\")")
    console.print(f"  consent and withdrawals:         {lake}/restricted/consent_status, restricted/withdrawal_audit")
    from medlake.reports.releases import releases_summary

    published = len(releases_summary(s.releases))
    console.print(f"  releases (tiers, applications):  {escape(s.releases)}/  (medlake releases): " + (
        f"{published} published" if published else
        f"none yet: a release needs at least k = {min(t.min_k for t in registry.sharing_tiers)} eligible "
        "cases (see the cards' re-identification section); try `medlake demo --cases 12` on an empty "
        "MEDLAKE_HOME"))
    console.print(f"  dataset cards:                   {lake}/program/dataset_cards/")
    console.print("  in the terminal:                 medlake status")
    sys.exit(code)


def _dataset_ids(datasets: str, registry, program: str) -> list[str] | None:
    """The ids of a --datasets option (None: every dataset); an unknown id stops the command."""
    chosen = [d.strip() for d in datasets.split(",") if d.strip()]
    unknown = [d for d in chosen if d not in registry.datasets_by_id]
    if unknown:
        _fail(f"unknown dataset(s) {', '.join(unknown)}; the registry {program} has "
              f"{', '.join(registry.datasets_by_id)}")
    return chosen or None


def _synthesise(out: Path, registry, *, cases: int, seed: int, tiny: bool, batches: int, datasets, truth,
                consent: bool = True, applications: bool = True) -> None:
    from medlake.synth import SynthSpec, generate

    spec = SynthSpec(datasets=tuple(datasets) if datasets else None, cases=cases, batches=batches,
                     tiny=tiny, seed=seed, consent=consent, applications=applications)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("writing synthetic exports", total=None)
        report = generate(out, registry, spec, truth_path=truth,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"Wrote {report.cases} cases in {report.batches} batches ({report.files} files) to "
                  f"{escape(str(out))}; truth file {escape(str(report.truth_path))}")


@main.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Landing root to write into.")
@click.option("--datasets", default="", help="Comma-separated dataset ids (default: every dataset).")
@click.option("--cases", default=DEMO_CASES, show_default=True, help="Cases per dataset.")
@click.option("--batches", default=1, show_default=True, help="Batches per dataset.")
@click.option("--tiny", is_flag=True, help="8x8 pixels and one image object per case (scale runs).")
@click.option("--seed", default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Truth file path (default OUT/_synth/truth.json).")
@click.option("--no-consent", is_flag=True, help="Write no _consent/ files.")
@click.option("--no-applications", is_flag=True, help="Write no _applications/ examples.")
def synth(out: Path, datasets: str, cases: int, batches: int, tiny: bool, seed: int, truth: Path | None,
          no_consent: bool, no_applications: bool) -> None:
    """Write synthetic hospital exports (EXPORT_FORMAT.md) and a truth file of every identifier planted."""
    settings = Settings.from_env()
    try:
        registry = load_registry(settings.program)
    except RegistryError as e:
        _fail(str(e))
    chosen = _dataset_ids(datasets, registry, settings.program)
    started = time.perf_counter()
    _synthesise(out, registry, cases=cases, seed=seed, tiny=tiny, batches=batches, datasets=chosen,
                truth=truth, consent=not no_consent, applications=not no_applications)
    console.print(f"in {time.perf_counter() - started:.1f} s")


@main.command()
def status() -> None:
    """Status per dataset: ingestion, de-identification, and cases by annotation status."""
    s = Settings.from_env().absolute()
    if not _print_summary(s):
        console.print(f"No batches ingested yet in {escape(s.lake)}. Land exports in {escape(s.landing)} and run "
                      "`medlake run`.")


def _print_summary(s: Settings) -> bool:
    """Every status table there is data for; False when there is none."""
    from medlake.lake import DeltaStore, Lake
    from medlake.reports import ingestion_summary
    from medlake.reports.cases import cases_summary
    from medlake.reports.deid import deid_summary

    store = DeltaStore(Lake.from_root(s.lake))
    printed = _per_dataset_table("Ingested export batches", ingestion_summary(store), {
        "batches": "batches", "refused": "refused", "files": "files", "objects": "objects", "cases": "cases",
        "case_rows_refused": "rows refused", "quarantined": "files quarantined", "duplicates": "duplicates"})
    verdicts = {True: Text("passed", style="green"), False: Text("FAILED", style="red"), None: Text("not run")}
    deid_rows = [{**r, "identifier_check": verdicts[r["identifier_check_passed"]]} for r in deid_summary(store)]
    printed |= _per_dataset_table("De-identified (deid zone)", deid_rows, {
        "dicom": "DICOM objects", "slides": "slides", "annotation_files": "annotation files",
        "pixels_cleaned": "pixels cleaned", "defaced": "defaced", "quarantined": "quarantined",
        "identifier_check": "identifier check"})
    printed |= _per_dataset_table("Cases by annotation status (deid/cases)", cases_summary(store), {
        "cases": "cases", "image_only": "image only", "partial": "partial", "full": "full", "withheld": "withheld"})
    return _print_progress(store) or printed


def _per_dataset_table(title: str, rows: list[dict], columns: dict[str, str]) -> bool:
    if not rows:
        return False
    table = Table(title=title)
    table.add_column("team", no_wrap=True)
    table.add_column("dataset", no_wrap=True)
    for heading in columns.values():
        table.add_column(heading, justify="right")
    for r in rows:
        table.add_row(_cell(r["team"]), _cell(r["dataset"]), *(_cell(r[k]) for k in columns))
    console.print(table)
    return True


def _cell(value) -> Text:
    """A table cell shown as written (a str cell would be read as markup); None is blank."""
    return value if isinstance(value, Text) else Text("" if value is None else str(value))


def _print_progress(store) -> bool:
    from medlake.lake.tables import PROGRESS_BY_TEAM

    ds = store.dataset(PROGRESS_BY_TEAM)
    rows = [r for r in ds.to_table().to_pylist() if r["view"] == "all"] if ds is not None else []
    if not rows:
        return False
    table = Table(title=f"Programme progress against the 2019-11 target (as of {rows[0]['as_of']}, "
                        f"{100 * rows[0]['elapsed_ratio']:.1f}% of the programme period elapsed)")
    for c in ("scope", "team", "datasets", "cases", "target", "achievement"):
        table.add_column(c, justify="left" if c in ("scope", "team") else "right")
    for r in rows:
        table.add_row(_cell(r["scope"]), _cell(r["team"]), str(r["datasets"]), f"{r['cases']:,}", f"{r['target']:,}",
                      f"{100 * r['achievement']:.1f}%" if r["achievement"] is not None else "-")
    console.print(table)
    return True


@main.command()
def releases() -> None:
    """The latest version of every release (tier, team, dataset; applications) and the applications."""
    s = Settings.from_env().absolute()
    if not _print_releases(s):
        console.print(f"Nothing released yet under {s.releases}.")


def _print_releases(s: Settings) -> bool:
    from medlake.lake import DeltaStore, Lake
    from medlake.reports.releases import releases_summary
    from medlake.sharing.tables import APPLICATIONS, USAGE_REPORTS

    rows = releases_summary(s.releases)
    if rows:
        table = Table(title=f"Releases under {escape(s.releases)} (latest versions)")
        for c in ("release", "version", "released_on", "cases", "contents", "k"):
            table.add_column(c.replace("_", " "), justify="right" if c == "cases" else "left")
        for r in rows:
            table.add_row(*(_cell(r[c]) for c in ("release", "version", "released_on")), f"{r['cases']:,}",
                          _cell(r["contents"]), _cell(r["k"]))
        console.print(table)
    store = DeltaStore(Lake.from_root(s.lake))
    apps = store.dataset(APPLICATIONS)
    if apps is not None:
        usage = store.dataset(USAGE_REPORTS)
        overdue = {}
        for u in (usage.to_table().to_pylist() if usage is not None else []):
            if u["status"] == "overdue":
                overdue[u["application_id"]] = overdue.get(u["application_id"], 0) + 1
        table = Table(title="Access applications")
        for c in ("application", "institution", "datasets", "status", "expires", "overdue reports"):
            table.add_column(c)
        for a in sorted(apps.to_table().to_pylist(), key=lambda a: a["application_id"]):
            table.add_row(_cell(a["application_id"]), _cell(a["institution"]), _cell(", ".join(a["datasets"])),
                          _cell(a["status"]), _cell(a["expires"]), _cell(overdue.get(a["application_id"])))
        console.print(table)
    return bool(rows) or apps is not None


@main.command()
@click.argument("sql")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
def query(sql: str, as_csv: bool) -> None:
    """Run SQL with DuckDB over the Parquet catalogue (views: instances, series, studies, cases,
    annotations, progress_by_dataset, progress_by_team, consent_summary)."""
    from medlake.catalog import CatalogError, default_db_path
    from medlake.catalog import query as run_query
    from medlake.lake import DeltaStore, Lake

    s = Settings.from_env().absolute()
    try:
        result = run_query(default_db_path(DeltaStore(Lake.from_root(s.lake))), sql)
    except CatalogError as e:
        _fail(str(e))
    if as_csv:
        import pyarrow.csv as pacsv

        buf = __import__("io").BytesIO()
        pacsv.write_csv(result, buf)
        sys.stdout.write(buf.getvalue().decode("utf-8"))
        return
    table = Table(show_lines=False)
    for name in result.column_names:
        table.add_column(_cell(name))
    for row in result.to_pylist():
        table.add_row(*(_cell(v) for v in row.values()))
    console.print(table)


@main.command()
@click.option("--open", "open_it", is_flag=True, help="Open it in the default browser.")
@click.option("--serve", is_flag=True, help="Serve it on http://127.0.0.1:PORT until interrupted.")
@click.option("--port", default=8765, show_default=True)
def dashboard(open_it: bool, serve: bool, port: int) -> None:
    """Print the dashboard's path (the default), open it, or serve it on localhost."""
    from assets.programme import dashboard_path
    from medlake.lake import DeltaStore, Lake

    s = Settings.from_env().absolute()
    path = dashboard_path(DeltaStore(Lake.from_root(s.lake)))
    if not path.is_file():
        _fail(f"no dashboard yet at {path}: run `medlake run` (or `medlake demo`) first")
    if serve:
        import functools
        import http.server

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
        with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
            console.print(f"Serving {escape(str(path))} on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
            try:
                httpd.serve_forever()
            except KeyboardInterrupt:
                pass
        return
    if open_it:
        import webbrowser

        webbrowser.open(path.as_uri())
    console.print(escape(str(path)))


if __name__ == "__main__":
    main()

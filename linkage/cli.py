"""The `linkage` command: a thin layer over the library and the flows."""

from __future__ import annotations

import atexit
import getpass
import logging
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from linkage import PROGRESS_LOGGER
from linkage.errors import LinkageError
from linkage.lock import LOCKED_EXIT_CODE, WarehouseLocked

app = typer.Typer(
    help="Cross-agency record linkage: one person index from agency extracts.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)  # paths stay on one line
# Prefect's local API would otherwise try to send usage telemetry: nothing leaves the machine.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _quiet_exit() -> None:
    """At interpreter exit DuckDB's binding (nanobind) lists every object still alive,
    tens of "leaked instance" lines that mean nothing for a process that is ending.
    Registered first, so it runs after every other exit handler; it hides only what is
    printed while the interpreter tears down."""
    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


atexit.register(_quiet_exit)


ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Project config YAML.")]


def _parse_date(value: str | None) -> date | None:
    return None if value is None else datetime.strptime(value, "%Y-%m-%d").date()


@app.command()
def nightly(
    config: ConfigOption,
    run_date: Annotated[
        str | None, typer.Option(help="Night to run, YYYY-MM-DD (default today).")
    ] = None,
    full: Annotated[
        bool,
        typer.Option(help="A full rebuild: every row and record through the whole night."),
    ] = False,
) -> None:
    """Run the nightly flow for one night."""
    from flows.nightly import nightly as nightly_flow

    report = _run(lambda: nightly_flow(config, _parse_date(run_date), full))
    _where(config, report)


@app.command()
def schedule(
    config: ConfigOption,
    name: Annotated[str, typer.Option(help="The deployment's name.")] = "nightly",
) -> None:
    """Serve the nightly flow as a Prefect deployment: 02:00 Europe/London, one run at a time
    (against the server in PREFECT_API_URL; stop with Ctrl-C)."""
    from flows.schedule import serve_nightly

    console.print(f"serving deployment nightly/{name}: every night at 02:00 Europe/London")
    _run(lambda: serve_nightly(config, name))


@app.command()
def demo(config: ConfigOption) -> None:
    """Run every night in the landing directory in date order (training once if no model)."""
    from flows.link import relink
    from flows.nightly import nightly as nightly_flow
    from flows.train import train as train_flow
    from linkage.config import load_project
    from linkage.link.train import latest_model

    project = load_project(config)
    nights = sorted(p.name for p in project.landing_dir.iterdir() if p.is_dir())
    for night in nights:
        report = _run(lambda night=night: nightly_flow(config, _parse_date(night)))
        if project.linkage.model is None and latest_model(project.model_dir) is None:
            # First night of a new warehouse: train once, explicitly, then link.
            console.print("no trained model yet: training on this night's records")
            model_path = _run(lambda: train_flow(config))
            console.print(f"trained model {model_path.name}")
            report = _run(lambda: relink(config))
        console.print(f"{night}: {report.status} in {report.seconds:.0f} s (run {report.run_id})")
    _where(config, report)


def _where(config: Path, report) -> None:  # noqa: ANN001 - a RunReport
    """Where the last run's outputs are."""
    from linkage.config import load_project

    project = load_project(config)
    outputs = project.output_dir.resolve()
    run_dir = outputs / "runs" / report.run_id
    console.print(f"night {report.run_date}: {report.status} (run {report.run_id})")
    console.print(f"  person index: {project.warehouse.resolve()} (tables linked_index, person)")
    console.print(f"  alerts:       {run_dir / 'alerts'}")
    console.print(f"  exports:      {outputs / 'exports' / report.run_id}")
    console.print(f"  report:       {run_dir / 'report.md'} (report.json for machines)")


@app.command()
def train(
    config: ConfigOption,
    seed: Annotated[int, typer.Option(help="Seed for u sampling.")] = 42,
) -> None:
    """Train the linkage model on the warehouse's canonical records; save a new version."""
    from flows.train import train as train_flow
    from linkage.link.train import training_report

    model_path = _run(lambda: train_flow(config, seed))
    console.print(training_report(model_path).to_text())
    console.print(f"model saved: {model_path}")


@app.command()
def link(config: ConfigOption) -> None:
    """Re-link the warehouse's current records with the saved model (e.g. after training)."""
    from flows.link import relink

    report = _run(lambda: relink(config))
    console.print(report.to_markdown())


@app.command()
def rebuild(config: ConfigOption) -> None:
    """Re-derive every person from the current records (no intake) and publish, saying how
    far the incrementally kept index had drifted from the rebuild."""
    from flows.link import rebuild as rebuild_flow

    report = _run(lambda: rebuild_flow(config))
    console.print(report.to_markdown())


@app.command()
def evaluate(
    config: ConfigOption,
    truth: Annotated[Path, typer.Option(help="The generator's truth/ directory.")],
    night: Annotated[
        str | None, typer.Option(help="Night of the truth, YYYY-MM-DD (default: the run's).")
    ] = None,
) -> None:
    """Measure the published person index against the truth; saved with its link run."""
    from linkage.config import load_project
    from linkage.evaluate import evaluate_run

    result = _run(lambda: evaluate_run(load_project(config), truth, _parse_date(night)))
    console.print(result.to_markdown())


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Output directory (landing/ and truth/).")],
    people: Annotated[int, typer.Option(help="Number of residents.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 1,
    nights: Annotated[int, typer.Option(help="Nights of extracts (1 full + deltas).")] = 3,
    start_date: Annotated[str, typer.Option(help="First night, YYYY-MM-DD.")] = "2026-11-01",
    variant: Annotated[
        str,
        typer.Option(help="scottish (default), no_national_ids, address_line or housing."),
    ] = "scottish",
    write_config: Annotated[
        bool, typer.Option(help="Also write OUT/config/ (project.yaml, sources/*.yaml).")
    ] = True,
    name_diversity: Annotated[
        str,
        typer.Option(
            help="normal (default), or low: a quarter of people share six surnames and"
            " forenames come from a small pool, as on Lewis and Harris (any variant)."
        ),
    ] = "normal",
) -> None:
    """Generate a synthetic multi-agency population with ground truth (and its config)."""
    from linkage.generate import generate_population
    from linkage.generate.names import NAME_DIVERSITIES
    from linkage.generate.variants import variant_named

    try:
        variant_named(variant)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--variant") from None
    if name_diversity not in NAME_DIVERSITIES:
        choices = ", ".join(NAME_DIVERSITIES)
        raise typer.BadParameter(f"choose one of: {choices}", param_hint="--name-diversity")

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("people", total=people)
        summary = generate_population(
            out,
            people=people,
            seed=seed,
            nights=nights,
            start_date=_parse_date(start_date) or date(2026, 11, 1),
            progress=lambda done: progress.update(bar, completed=done),
            variant=variant,
            write_config=write_config,
            name_diversity=name_diversity,
        )
    console.print(summary)


@app.command()
def explain(
    config: ConfigOption,
    person_id: Annotated[str, typer.Option("--person-id", help="Person id, e.g. P0000000123.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Also write explanation.md and one waterfall chart per edge here."),
    ] = None,
) -> None:
    """Explain why a person's records were linked: records, edges, review items, id history."""
    from rich.markdown import Markdown

    from linkage.config import load_project
    from linkage.explain import explain_in_project

    explanation = _run(lambda: explain_in_project(load_project(config), person_id, out))
    console.print(Markdown(explanation.to_markdown()))
    if out is not None:
        console.print(f"explanation and waterfall charts written to {out}")


@app.command()
def dashboards(
    config: ConfigOption,
    out: Annotated[
        Path | None,
        typer.Option(help="Output directory (default <output_dir>/runs/<run_id>/dashboards)."),
    ] = None,
) -> None:
    """Write Splink's offline dashboards for the riskiest persons of the latest linked run."""
    from linkage.config import load_project
    from linkage.explain import dashboards_for_project

    paths = _run(lambda: dashboards_for_project(load_project(config), out))
    for path in paths:
        console.print(f"dashboard written: {path}")
    if not paths:
        console.print("no dashboards: no chosen person has a scored edge")


@app.command()
def export(config: ConfigOption) -> None:
    """Write each agency's export of the latest linked run under the data-sharing rules."""
    from linkage.config import load_project
    from linkage.export import export_latest

    summary = _run(lambda: export_latest(load_project(config)))
    console.print(summary.to_markdown())


@app.command()
def review(
    config: ConfigOption,
    limit: Annotated[int, typer.Option(help="Pairs to show.")] = 50,
) -> None:
    """List the latest link stage's queued undecided pairs, most at stake first."""
    from linkage.config import load_project
    from linkage.review import review_queue
    from linkage.warehouse import open_warehouse

    def queue():  # noqa: ANN202
        with open_warehouse(load_project(config).warehouse) as con:
            return review_queue(con, limit)

    console.print(_run(queue).to_string(index=False))


@app.command()
def decide(
    config: ConfigOption,
    record_a: Annotated[str, typer.Argument(help="A record key, source:record_id.")],
    record_b: Annotated[str, typer.Argument(help="The other record key.")],
    match: Annotated[bool, typer.Option("--match/--no-match", help="One person or two.")],
    note: Annotated[str, typer.Option(help="Why (kept with the decision).")] = "",
    by: Annotated[
        str, typer.Option(help="Who decides (kept with the decision; default: your login).")
    ] = "",
) -> None:
    """Record an analyst's decision on a pair; every later link stage and training obeys it."""

    from linkage.config import load_project
    from linkage.review import record_decision
    from linkage.warehouse import open_warehouse

    who = getpass.getuser()

    def decide_pair() -> None:
        with open_warehouse(load_project(config).warehouse) as con:
            record_decision(con, record_a, record_b, match, note, decided_by=by or who)

    _run(decide_pair)
    console.print(f"recorded: {'match' if match else 'non-match'}; run `linkage link` to apply")


@app.command()
def serve(
    config: ConfigOption,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
) -> None:
    """Serve the review application (queue, evidence, decisions) in the browser, until stopped."""
    from linkage.config import load_project
    from linkage.review_app import serve as serve_app

    project = _run(lambda: load_project(config))
    console.print(f"review application: http://{host}:{port}/ (stop with Ctrl-C)")
    _run(lambda: serve_app(project, host, port))


reviewer_app = typer.Typer(
    help="Reviewer accounts of the review application (`linkage serve`).", no_args_is_help=True
)
app.add_typer(reviewer_app, name="reviewer")


@reviewer_app.command("add")
def reviewer_add(
    config: ConfigOption,
    name: Annotated[str, typer.Argument(help="The reviewer's sign-in name.")],
    role: Annotated[str, typer.Option(help="A role of the project config's review.roles.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    proxy_only: Annotated[
        bool,
        typer.Option("--proxy-only", help="No password: signs in only by the proxy's header."),
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Change an existing reviewer's role and password.")
    ] = False,
) -> None:
    """Add a reviewer (asks for a password unless --password-stdin or --proxy-only)."""
    from linkage.config import load_project
    from linkage.review_app.accounts import add_reviewer
    from linkage.warehouse import open_warehouse

    project = _run(lambda: load_project(config))
    roles = _run(project.review_roles)
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not proxy_only:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)

    def add():  # noqa: ANN202
        with open_warehouse(project.warehouse, project.identifier_registry()) as con:
            return add_reviewer(con, name, role, password, set(roles), replace)

    reviewer = _run(add)
    how = "password" if reviewer.has_password else "the proxy's header only"
    console.print(f"reviewer {reviewer.name}: role {reviewer.role} ({how})")


@reviewer_app.command("list")
def reviewer_list(config: ConfigOption) -> None:
    """List the reviewers, their roles and whether they are disabled."""
    from linkage.config import load_project
    from linkage.review_app.accounts import list_reviewers
    from linkage.warehouse import open_warehouse

    project = _run(lambda: load_project(config))
    roles = _run(project.review_roles)
    with open_warehouse(project.warehouse, project.identifier_registry()) as con:
        reviewers = list_reviewers(con)
    for reviewer in reviewers:
        agencies = ", ".join(sorted(roles.get(reviewer.role, []))) or "role no longer configured"
        state = "" if reviewer.active else f", disabled {reviewer.disabled_at:%Y-%m-%d}"
        sign_in = "password" if reviewer.has_password else "proxy only"
        typer.echo(f"{reviewer.name}: {reviewer.role} ({agencies}); {sign_in}{state}")
    if not reviewers:
        typer.echo("no reviewers yet: add one with `linkage reviewer add`")


@reviewer_app.command("disable")
def reviewer_disable(
    config: ConfigOption,
    name: Annotated[str, typer.Argument(help="The reviewer's sign-in name.")],
) -> None:
    """Disable a reviewer: no more sign-ins (their decisions keep their name)."""
    from linkage.config import load_project
    from linkage.review_app.accounts import disable_reviewer
    from linkage.warehouse import open_warehouse

    project = _run(lambda: load_project(config))

    def disable() -> None:
        with open_warehouse(project.warehouse, project.identifier_registry()) as con:
            disable_reviewer(con, name)

    _run(disable)
    console.print(f"reviewer {name} disabled (a running `linkage serve` signs them out)")


@app.command()
def profile(
    config: ConfigOption,
    source: Annotated[str, typer.Option(help="Source name, as in its config (e.g. health).")],
    night: Annotated[
        str | None,
        typer.Option(help="Night folder, YYYY-MM-DD (default: the newest with the source's file)."),
    ] = None,
    examples: Annotated[
        int, typer.Option(min=0, help="Standardised examples per field (personal data; 0: none).")
    ] = 3,
    row_numbers: Annotated[
        int, typer.Option(min=0, help="Row numbers shown per failing reason.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
) -> None:
    """Profile a source's landing file before its first night; writes nothing.

    Exits 1 when a night would skip the source (a required column is missing).
    """
    from linkage.config import load_project
    from linkage.profile import profile_source

    result = _run(
        lambda: profile_source(
            load_project(config), source, _parse_date(night), examples, row_numbers
        )
    )
    # stdout, not the log: examples are personal data and must not reach a log file
    typer.echo(result.to_json() if as_json else result.to_text())
    if not result.usable_tonight:
        raise typer.Exit(1)


@app.command()
def status(
    config: ConfigOption,
    last: Annotated[int, typer.Option(help="How many recent runs to show.")] = 10,
) -> None:
    """Recent runs (night, outcome, counts, seconds) and the last good night."""
    from linkage.config import load_project
    from linkage.status import status_text, warehouse_status

    project = _run(lambda: load_project(config))
    typer.echo(status_text(warehouse_status(project.warehouse), last))


@app.command()
def backfill(
    config: ConfigOption,
    first: Annotated[str, typer.Option("--from", help="First night, YYYY-MM-DD.")],
    last: Annotated[str, typer.Option("--to", help="Last night, YYYY-MM-DD.")],
) -> None:
    """Run, in date order, every night in the range that has not run; each its own run."""
    from flows.nightly import nightly as nightly_flow
    from linkage.config import load_project
    from linkage.status import nights_to_replay, warehouse_status

    project = _run(lambda: load_project(config))
    first_night, last_night = _parse_date(first), _parse_date(last)
    assert first_night is not None and last_night is not None  # typer requires both
    state = warehouse_status(project.warehouse)
    if state.in_progress is not None:
        console.print(f"[red]error:[/red] a run is in progress: {state.in_progress.describe()}")
        raise typer.Exit(LOCKED_EXIT_CODE)
    newest = state.last_good.run_date if state.last_good else None
    if newest is not None and first_night < newest:
        console.print(
            f"[red]error:[/red] the last good night is {newest}: backfill replays later nights"
            " only (an earlier extract would be published over a newer one)"
        )
        raise typer.Exit(2)
    missing, done = nights_to_replay(state, first_night, last_night)
    console.print(f"backfill: {len(missing)} nights to run, {len(done)} already good")
    for night in missing:  # a night that fails stops the backfill: later nights wait for it
        report = _run(lambda night=night: nightly_flow(config, night))
        console.print(f"{night}: run {report.run_id} {report.status}")


@app.command()
def verify(
    config: ConfigOption,
    run_id: Annotated[str, typer.Option(help="The run whose files to check.")],
) -> None:
    """Check a run's input, config, model and output files against its audit checksums."""
    from linkage.audit import verify_run
    from linkage.config import load_project

    project = _run(lambda: load_project(config))
    checked, problems = verify_run(project.warehouse, run_id)
    for problem in problems:
        typer.echo(f"{problem.problem}: {problem.kind} {problem.path}")
    typer.echo(f"run {run_id}: {checked} files checked, {len(problems)} missing or changed")
    if not checked or problems:
        raise typer.Exit(1)


class _ConsoleFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return (
            message if record.name == PROGRESS_LOGGER else f"{record.levelname.lower()}: {message}"
        )


def _configure_logging() -> None:
    """The console shows one progress line per stage, and warnings; never values."""
    root = logging.getLogger()
    if any(isinstance(handler.formatter, _ConsoleFormat) for handler in root.handlers):
        return
    # Prefect's console handler on the root logger would print every warning again, and
    # its task lines; they still reach Prefect's API (and UI) through its own handlers.
    for handler in [h for h in root.handlers if type(h).__name__ == "PrefectConsoleHandler"]:
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(_ConsoleFormat())
    handler.addFilter(
        lambda record: record.levelno >= logging.WARNING or record.name == PROGRESS_LOGGER
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _run(job):  # noqa: ANN001, ANN202
    """Run a job, turning the pipeline's own errors into a clear message and exit code 2
    (75 when another run holds the warehouse)."""
    _configure_logging()
    try:
        return job()
    except WarehouseLocked as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(LOCKED_EXIT_CODE) from None
    except LinkageError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


if __name__ == "__main__":
    app()

"""Command line: ``gridplan feeders``, ``gridplan study STUDY``, ``gridplan batch BATCH``,
``gridplan init DIR``; also ``python -m gridplan``.

A thin front over :mod:`gridplan.grid`, :mod:`gridplan.study` and :mod:`gridplan.batch`.
Bad input and usage errors print one line (naming the file and field, or what the command
expected) and exit with status 2; ``--debug`` shows the traceback. Steps longer than a
couple of seconds show a progress bar on a terminal (:func:`gridplan.core.progress.progress_bar`,
none in a redirected log); ``-v`` logs gridplan's steps to stderr.
"""

from __future__ import annotations

import csv
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridplan.core.errors import GridplanError
from gridplan.core.progress import progress_bar

if TYPE_CHECKING:
    from gridplan.study.summary import StudySummary

__all__ = ["app", "main"]

log = logging.getLogger(__name__)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="gridplan: feeder-by-feeder V2G deferral studies. Start with 'gridplan study "
    "quickstart' (a bundled example) or 'gridplan init DIR' (example files to edit).",
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


def _show_version(value: bool) -> None:
    if value:
        from gridplan import __version__

        typer.echo(f"gridplan {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log gridplan's steps (to stderr).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    _state["debug"] = debug
    _setup_logging(verbose)


def _setup_logging(verbose: bool) -> None:
    """Warnings of every library on stderr; with ``verbose``, gridplan's INFO lines too."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("gridplan").setLevel(logging.INFO if verbose else logging.WARNING)


class _Steps:
    """A command's steps: a progress bar over them on a terminal, and an INFO log line with
    the seconds each took."""

    def __init__(self, desc: str, total: int, unit: str = "step", eta: bool = True) -> None:
        self.desc = desc
        # steps of unequal length: no rate or time left
        fmt = None if eta else "{desc}: step {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
        self.bar = progress_bar(total=total, desc=desc, unit=unit, leave=False, bar_format=fmt)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.bar.set_postfix_str(what)
        start = time.perf_counter()
        yield
        self.bar.update()
        log.info("%s: %s (%.1f s)", self.desc, what, time.perf_counter() - start)

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


class OutputFormat(StrEnum):
    """How ``gridplan feeders`` prints its table."""

    table = "table"
    csv = "csv"
    json = "json"


@app.command("feeders")
def feeders_cmd(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Bundled feeder names or spec files (default: every bundled feeder)."),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="table (aligned text), csv or json (a list)."),
    ] = OutputFormat.table,
    check: Annotated[
        str | None,
        typer.Option(
            "--check",
            help="Compare an OpenDSS feeder's converted net with OpenDSS's own snapshot.",
        ),
    ] = None,
) -> None:
    """List feeders: buses, monitored assets, peak base load, headroom at peak.

    Each feeder is built and solved over its profile year (a few seconds each; a progress
    bar shows which)."""
    from gridplan.grid.feeders import bundled_feeders, load_feeder
    from gridplan.study.overview import feeder_overview

    if check is not None:
        _check_opendss(check)
        return
    refs = list(names) if names else list(bundled_feeders())
    rows = []
    with _Steps("feeders", len(refs), unit="feeder") as steps:
        for ref in refs:
            with steps.step(ref):
                rows.append(feeder_overview(load_feeder(ref)))
    for line in _feeder_lines(rows, output_format):
        typer.echo(line)


def _feeder_lines(rows: list[dict[str, Any]], output_format: OutputFormat) -> list[str]:
    """The feeders' overview as text lines: an aligned table, CSV or a JSON list."""
    if output_format is OutputFormat.json:
        return [json.dumps(rows, indent=2)]
    if output_format is OutputFormat.csv:
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().splitlines()
    lines = [
        f"{'feeder':<16}{'buses':>6}{'loads':>6}{'assets':>7}{'households':>11}"
        f"{'peak load kW':>14}  {'critical asset':<28}{'peak loading %':>15}{'headroom kVA':>13}"
    ]
    for r in rows:
        lines.append(
            f"{r['name']:<16}{r['buses']:>6}{r['loads']:>6}{r['assets']:>7}{r['households']:>11}"
            f"{r['peak_load_kw']:>14.1f}  {r['critical_asset'][:27]:<28}"
            f"{r['critical_loading_pct']:>15.1f}{r['headroom_kva']:>13.1f}"
        )
    return lines


def _check_opendss(check: str) -> None:
    """``gridplan feeders --check NAME``: the converted net against OpenDSS's snapshot."""
    from gridplan.core.errors import ConfigError
    from gridplan.grid import opendss
    from gridplan.grid.feeders import read_feeder_spec, resolve_feeder_path

    spec_path = resolve_feeder_path(check)
    network = read_feeder_spec(spec_path).network
    if network.source != "opendss":
        raise ConfigError(
            f"--check compares OpenDSS feeders only; '{check}' has network source "
            f"'{network.source}'",
            file=spec_path,
            field="network.source",
        )
    master = spec_path.parent / (network.master or "")
    typer.echo(f"{check}: converted net vs OpenDSS snapshot ({master.name}), same loads")
    comparisons = opendss.validate(master)
    for note in comparisons[0].report:
        typer.echo(f"conversion: {note}")
    for comparison in comparisons:
        for line in comparison.lines():
            typer.echo(line)
    if not all(c.passed for c in comparisons):
        raise typer.Exit(code=1)


@app.command("study")
def study_cmd(
    config: Annotated[
        Path,
        typer.Argument(
            metavar="STUDY",
            help="Study TOML file, or the name of a bundled example study: 'quickstart' "
            "(a bare name that is not a file; 'gridplan init DIR' copies it to edit).",
        ),
    ],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Parent folder of the results.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing study's results.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", "-w", help="Processes for the (year, draw) units; 0 = one per CPU."
        ),
    ] = 1,
) -> None:
    """Run one feeder study and print where its results went."""
    from gridplan.examples import resolve_example

    path = resolve_example(config, "study")  # before the heavy imports
    from gridplan.grid.feeders import load_feeder
    from gridplan.outputs import check_output_folder, study_folder, write_study
    from gridplan.study import load_study_config, run
    from gridplan.study.config import feeder_ref

    study = load_study_config(path)
    folder = study_folder(study.name, output_dir if output_dir is not None else study.output_dir)
    check_output_folder(folder, overwrite=overwrite, file=path)  # before any computation
    units = len(study.years()) * study.horizon.draws
    log.info("study '%s' (%s): %d (year, draw) units, feeder %s", study.name, path, units,
             study.feeder)  # fmt: skip
    with _Steps(f"study {study.name}", 3, eta=False) as steps:
        with steps.step(f"load feeder {study.feeder}"):
            feeder = load_feeder(feeder_ref(study, path))
        with steps.step(f"simulate {units} units"):
            result = run(path, feeder=feeder, progress=sys.stderr.isatty(), workers=workers)
        with steps.step(f"write {folder}"):
            files = write_study(result, folder, overwrite=overwrite)
    log.info("wrote %d files", len(files))
    for line in _study_lines(result.summary):
        typer.echo(line)
    typer.echo(f"results: {folder}")


def _study_lines(s: StudySummary) -> list[str]:
    """The study's headline figures, a few lines for the terminal."""
    c, h, period = s.critical_asset, s.horizon, s.period
    lines = [
        f"study '{s.study}' on feeder '{s.feeder}': planning years {h.start}-{h.end}, "
        f"{h.draws} draw(s); period {period.start} .. {period.end} ({period.steps} steps)",
        f"  {s.year}: {s.fleet.evs} EVs ({s.fleet.v2g_enrolled_evs} V2G-enrolled); "
        "assets over limit: " + ", ".join(f"{case} {n}" for case, n in s.assets_over_limit.items()),
        f"  critical asset {c.name} ({c.evs_downstream:.0f} EVs downstream, "
        f"{c.v2g_enrolled_evs_downstream:.0f} V2G-enrolled): "
        f"peak {c.peak_loading_pct['base']:.1f} % (no EVs), "
        f"{c.peak_loading_pct['charging']:.1f} % (charging), "
        f"{c.peak_loading_pct['v2g']:.1f} % (V2G)",
    ]
    deferral = c.deferral_years
    deferral_text = "n/a (no need in the horizon)" if deferral is None else f"{deferral:g} years"
    if deferral is not None and c.deferral_capped:
        deferral_text = f">= {deferral:g} years (capped by the horizon)"
    lines.append(
        f"  year of need (P50): {_year_text(c.year_of_need_charging, h.end)} without V2G, "
        f"{_year_text(c.year_of_need_v2g, h.end)} with V2G; deferral at "
        f"{h.confidence:.0%} confidence: {deferral_text}"
    )
    if "v1g" in s.cases:
        lines.append(
            f"  managed charging only (V1G): year of need {_year_text(c.year_of_need_v1g, h.end)}"
            f"; of the V2G deferral, V1G gives {_years(c.deferral_years_v1g_part)} and export "
            f"{_years(c.deferral_years_export_part)} (each at {h.confidence:.0%} confidence)"
        )
    if "v2g_perfect" in s.cases:
        lines.append(
            "  without availability effects (every enrolled EV answers at full power): year "
            f"of need {_year_text(c.year_of_need_v2g_perfect, h.end)}, deferral "
            f"{_years(c.deferral_years_perfect)}"
        )
    diverged = {case: pf.non_converged_steps for case, pf in s.power_flow.items()}
    if any(diverged.values()):
        steps = ", ".join(f"{case} {n}" for case, n in diverged.items())
        resting = [case for case, flag in c.need_from_non_convergence.items() if flag]
        lines.append(
            f"  WARNING power-flow steps that did not converge: {steps}; in EV cases each "
            "counts as over the limit"
            + (
                f" (the critical asset's need rests on them: {', '.join(resting)})"
                if resting
                else ""
            )
        )
    for case, value in s.deferral_value_usd_total.items():
        lines.append(
            f"  deferral value, {case} ({s.cases[case]}), present worth "
            f"{s.valuation['dollar_year']} USD: {'n/a' if value is None else f'{value:,.0f}'}"
        )
    return lines


def _years(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g} years"


@app.command("batch")
def batch_cmd(
    config: Annotated[
        Path,
        typer.Argument(
            metavar="BATCH",
            help="Batch TOML file, or the name of a bundled example batch: 'screen' (a bare "
            "name that is not a file).",
        ),
    ],
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-w", min=1, help="Worker processes (default: all cores; 1: no Dask)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Address of a running Dask scheduler (tcp://host:8786)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep finished units; run failed and missing ones.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete the batch's earlier results first.")
    ] = False,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Parent folder of the results.")
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show a progress bar (default: when stderr is a terminal).",
            show_default=False,
        ),
    ] = None,
    max_units: Annotated[
        int | None,
        typer.Option(
            "--max-units",
            min=1,
            help="Most units the batch may hold (default: execution.max_units, 100,000).",
        ),
    ] = None,
) -> None:
    """Run a batch of feeder studies (feeders × scenarios × draws); exit 1 if a unit failed."""
    from gridplan.examples import resolve_example

    path = resolve_example(config, "batch")  # before the heavy imports
    from gridplan.batch import plan_batch, run

    start = time.perf_counter()
    plan = plan_batch(path, max_units=max_units)
    log.info("batch %s: planned in %.1f s", path, time.perf_counter() - start)
    typer.echo(
        f"starting batch '{plan.config.name}': {len(plan.units):,} units "
        f"({len(plan.feeders)} feeders × {len(plan.scenarios)} scenarios × "
        f"{plan.config.draws} draws)"
    )
    result = run(
        plan,
        workers=workers,
        scheduler=scheduler,
        resume=resume,
        overwrite=overwrite,
        output_dir=output_dir,
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    log.info("batch %s: ran in %.1f s", plan.config.name, time.perf_counter() - start)
    for line in result.summary_lines():
        typer.echo(line)
    if result.failed:
        raise typer.Exit(1)  # main() returns the code (click returns it, not raises it)


@app.command("init")
def init_cmd(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder for the files (made if missing).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write the example study (quickstart.toml) and batch (screen.toml) into DIR, to edit."""
    from gridplan.examples import write_examples

    written = write_examples(folder, force=force)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"run them: gridplan study {written[0]}; gridplan batch {written[1]}")


def _year_text(year: int | None, end: int) -> str:
    return str(year) if year is not None else f"after {end}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gridplan`` command; returns the exit status.

    0 on success; 1 when a batch finished with failed units; 2 on bad input or usage (one
    line naming the file and field, or what the command expected); 130 when interrupted.
    """
    _state["debug"] = False  # set by the callback; main() may be called more than once
    debug = "--debug" in (argv if argv is not None else sys.argv)
    with _sigint_watch() as interrupted:
        try:
            # standalone_mode=False: click returns the code of a typer.Exit instead of
            # raising SystemExit, and returns the command's own return value otherwise.
            code = app(args=argv, standalone_mode=False)
        except GridplanError as exc:
            if debug:
                raise
            typer.echo(f"error: {exc}", err=True)
            return 2
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            return 130
        except SystemExit as exc:  # sys.exit() or SystemExit raised by a command
            return _exit_status(exc.code)
        except Exception as exc:
            if interrupted and not debug:
                # a library turned the KeyboardInterrupt into its own error (pandas' CSV
                # reader raises ParserError when Ctrl-C interrupts a read)
                typer.echo("interrupted", err=True)
                return 130
            status = _click_status(exc)
            if status is None or debug:
                raise
            return status
    if code == 130:  # typer turns Ctrl-C into Exit(130), which click returns
        typer.echo("interrupted", err=True)
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


@contextmanager
def _sigint_watch() -> Iterator[list[bool]]:
    """Record Ctrl-C (SIGINT) while the command runs, then raise KeyboardInterrupt as
    Python does; yields a list that is non-empty once Ctrl-C was pressed."""
    seen: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def on_sigint(signum: int, frame: object) -> None:
        seen.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _click_status(exc: Exception) -> int | None:
    """The exit status of click's own exceptions (usage errors: one line, 2; abort: 130),
    ``None`` for any other exception. Matched by class name: typer may vendor click."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Abort" in names:
        typer.echo("interrupted", err=True)
        return 130
    if "Exit" in names:
        code = int(getattr(exc, "exit_code", 0))
        if code == 130:  # typer turns Ctrl-C into Exit(130)
            typer.echo("interrupted", err=True)
        return code
    if "ClickException" in names:
        message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
        message = message.replace("Value error, ", "")  # typer's enum check, via pydantic
        ctx = getattr(exc, "ctx", None)
        command = getattr(ctx, "command_path", None) or "gridplan"
        typer.echo(f"error: {message} (see '{command} --help')", err=True)
        return 2
    return None


def _exit_status(code: object) -> int:
    """The process exit status of ``SystemExit(code)`` (as the interpreter maps it)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    typer.echo(str(code), err=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""The files of a study: a complete folder or none.

:func:`write_study` writes every file of a :class:`~gridplan.study.result.StudyResult` into
a temporary sibling of the destination, then moves it into place under an exclusive lock:
a reader never sees a half-written folder, two runs never mix their files, ``overwrite``
swaps whole folders (no stale file of an earlier run survives), and a killed run leaves
only a temporary folder that the next run removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from matplotlib.figure import Figure

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.core.io import write_csv, write_json, write_text, write_with
from gridplan.outputs.figures import write_figures
from gridplan.outputs.gis import export_assets
from gridplan.outputs.report import write_report
from gridplan.outputs.webmap import DEFAULT_TILES, write_feeder_map
from gridplan.study.result import StudyResult

__all__ = ["check_output_folder", "study_folder", "write_study"]

#: Seconds a study waits for another process writing the same folder.
LOCK_TIMEOUT_S = 600.0


def study_folder(result_or_name: StudyResult | str, output_dir: str | Path | None = None) -> Path:
    """``<output_dir>/<study name>``; ``output_dir`` defaults to the config's (``outputs``)."""
    if isinstance(result_or_name, str):
        return Path(output_dir if output_dir is not None else "outputs") / result_or_name
    config = result_or_name.config
    return Path(output_dir if output_dir is not None else config.output_dir) / config.name


def check_output_folder(folder: str | Path, *, overwrite: bool, file: Path | None = None) -> None:
    """Fail early when ``folder`` holds results and ``overwrite`` is off, or cannot be a
    folder (a file is in the way, a parent is not writable)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"output folder {folder} is not a folder (a file of that name exists)",
            file=file,
            field="output_dir",
        )
    if not overwrite and folder.is_dir() and any(folder.iterdir()):
        raise ConfigError(
            f"output folder {folder} already holds results; use --overwrite (Python: "
            "overwrite=True) to replace them or choose another study name or --output-dir",
            file=file,
            field="name",
        )
    parent = _existing_parent(folder)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write the output folder {folder}: {parent} is not writable",
            file=file,
            field="output_dir",
        )


def _existing_parent(folder: Path) -> Path:
    parent = folder.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def write_study(
    result: StudyResult,
    folder: str | Path,
    *,
    overwrite: bool = False,
    templates_dir: str | Path | None = None,
    map_tiles: str | None = DEFAULT_TILES,
) -> list[str]:
    """Write a study's files into ``folder`` as one complete folder.

    Files: ``config.toml``, ``assets.csv``, ``needs.csv``, ``valuation.csv``,
    ``economics.csv``, ``sensitivity.csv`` (with ``[sensitivity]``),
    ``deferral_opportunities.csv`` (targeted V2G per constrained asset, procure or build;
    when the study computed it), ``evs.csv``,
    ``timeseries.csv``, the figures (PNG and SVG), ``assets.gpkg`` (layers
    ``transformers``, ``lines``, ``buses``, ``deferral_opportunities``) and
    ``assets.geojson``, ``feeder_map.html`` (the interactive map; only with the ``maps``
    extra installed, else skipped with a logged note), ``report.md``/``report.html`` and
    ``summary.json`` (listing them all).

    Parameters
    ----------
    result
        A study result (:func:`gridplan.study.run`).
    folder
        Destination folder (created with its parents).
    overwrite
        Replace an existing folder of results (whole: no file of it survives); without it,
        an existing non-empty folder is an error.
    templates_dir
        A folder of report templates overriding the bundled ones
        (:func:`gridplan.outputs.report.template_environment`; default: the
        ``GRIDPLAN_REPORT_TEMPLATES`` environment variable's folder, else none).
    map_tiles
        Web tiles under the interactive map of a geographic feeder (a folium /
        xyzservices name), ``None`` for none (a map that needs no internet for tiles).

    Returns
    -------
    list of str
        The file names written.

    Raises
    ------
    ConfigError
        The folder holds results and ``overwrite`` is off, or it cannot be written (the
        message names the folder and the operating system's reason).
    """
    folder = Path(folder)
    check_output_folder(folder, overwrite=overwrite)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(folder)
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as exc:
        raise ConfigError(
            f"cannot write the output folder {folder}: {exc}", field="output_dir"
        ) from None
    try:
        files = _write_files(result, tmp, templates_dir=templates_dir, map_tiles=map_tiles)
        _move_into_place(tmp, folder, overwrite=overwrite)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(
            f"cannot write the output folder {folder}: {exc}", field="output_dir"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


def _lock(folder: Path) -> FileLock:
    return FileLock(str(folder.parent / f".{folder.name}.lock"), timeout=LOCK_TIMEOUT_S)


def _move_into_place(tmp: Path, folder: Path, *, overwrite: bool) -> None:
    """Rename ``tmp`` to ``folder`` under the folder's lock (old folder swapped out whole)."""
    try:
        with _lock(folder):
            check_output_folder(folder, overwrite=overwrite)
            old = None
            if folder.exists():
                old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
                folder.rename(old)
            tmp.rename(folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except Timeout:
        raise GridplanError(
            f"another process has held the lock of {folder} for {LOCK_TIMEOUT_S:.0f} s; "
            "is another study writing there?"
        ) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(folder: Path) -> None:
    """Remove temporary siblings of ``folder`` left by killed runs (their process is gone)."""
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
        pid = stale.name.rsplit(".tmp-", 1)[-1].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    for stale in folder.parent.glob(f".{folder.name}.old-*"):
        with contextlib.suppress(OSError):
            if stale.is_dir():
                shutil.rmtree(stale)


def _write_files(
    result: StudyResult,
    out: Path,
    *,
    templates_dir: str | Path | None = None,
    map_tiles: str | None = DEFAULT_TILES,
) -> list[str]:
    """Write every file of the study into ``out``; return their names."""
    import tomli_w

    files = []
    config = result.config.model_dump(mode="json", exclude_none=True)
    write_text(out / "config.toml", tomli_w.dumps(config))
    files.append("config.toml")
    write_csv(out / "assets.csv", result.assets.reset_index(), index=False, float_format="%.6g")
    files.append("assets.csv")
    write_csv(out / "needs.csv", result.needs, index=False, float_format="%.6g")
    files.append("needs.csv")
    write_csv(out / "valuation.csv", _valuation_table(result), index=False, float_format="%.6g")
    files.append("valuation.csv")
    if result.economics is not None:
        write_csv(out / "economics.csv", result.economics.reset_index(), index=False)
        files.append("economics.csv")
    if result.sensitivity is not None:
        write_csv(out / "sensitivity.csv", result.sensitivity, index=False)
        files.append("sensitivity.csv")
    if result.opportunities is not None:
        write_csv(
            out / "deferral_opportunities.csv",
            result.opportunities,
            index=False,
            float_format="%.6g",
        )
        files.append("deferral_opportunities.csv")
    write_csv(out / "evs.csv", _ev_table(result), index=False, float_format="%.6g")
    files.append("evs.csv")
    write_csv(out / "timeseries.csv", _timeseries_table(result), float_format="%.6g")
    files.append("timeseries.csv")
    write_with(out / "critical_asset_loading.png", lambda tmp: _plot_critical(result, tmp))
    files.append("critical_asset_loading.png")
    figures = write_figures(result, out)
    files += figures
    files += export_assets(result, out)
    files += write_feeder_map(result, out, tiles=map_tiles)
    files += write_report(result, out, figures, templates_dir=templates_dir)
    summary = {**result.summary.to_dict(), "files": [*files, "summary.json"]}
    write_json(out / "summary.json", summary)
    files.append("summary.json")
    return files


def _valuation_table(result: StudyResult) -> pd.DataFrame:
    """Per-asset valuation: need, upgrade, its cost and source, deferral and its value."""
    a = result.assets
    columns = [
        "kind", "name", "rating_kva", "limit_pct", "year_of_need_charging_p50",
        "year_of_need_charging_p90", "upgrade_option", "new_rating_kva", "upgrade_sufficient",
        "cost_usd", "dollar_year", "cost_usd_dollar_year", "cost_source",
    ]  # fmt: skip
    for case in [c for c in result.horizon.cases if c.startswith("v2g")]:
        columns += [
            f"year_of_need_{case}_p50", f"deferral_years_{case}", f"deferral_capped_{case}",
            f"firmness_{case}_end", f"deferral_value_usd_{case}",
        ]  # fmt: skip
    return a[[c for c in columns if c in a.columns]].reset_index()


def _ev_table(result: StudyResult) -> pd.DataFrame:
    fleet = result.fleet
    names = result.feeder.net.load.name.to_numpy()
    charging, v2g = result.ev_dispatch["charging"], result.ev_dispatch["v2g"]
    return pd.DataFrame(
        {
            "ev": np.arange(fleet.n_ev),
            "load": names[fleet.load_pos] if fleet.n_ev else [],
            "bus": fleet.bus,
            "vehicle": fleet.vehicle,
            "charger": fleet.charger,
            "battery_kwh": fleet.battery_kwh,
            "charger_kw": fleet.charger_kw,
            "export_kw": fleet.export_kw,
            "v2g_capable": fleet.v2g_capable,
            "v2g_enrolled": fleet.v2g_enrolled,
            "charging_kwh": charging.charge_kwh,
            "v2g_case_charging_kwh": v2g.charge_kwh,
            "v2g_export_kwh": v2g.export_kwh,
            "departure_shortfall_kwh": np.nansum(v2g.departure_shortfall_kwh, axis=0),
            "trip_shortfall_kwh_yr": fleet.trip_shortfall_kwh.sum(axis=0),
            "dwell_shortfall_kwh_yr": fleet.dwell_shortfall_kwh.sum(axis=0),
        }
    )


def _timeseries_table(result: StudyResult) -> pd.DataFrame:
    critical = result.summary.critical_asset.asset_id
    col = result.feeder.assets.index.get_loc(critical)
    frame = pd.DataFrame(index=result.time_index)
    for case in result.loading_pct:
        frame[f"critical_loading_pct_{case}"] = result.loading_pct[case][:, col]
        frame[f"min_vm_pu_{case}"] = result.min_vm_pu[case]
        frame[f"converged_{case}"] = result.converged[case]
    for case, r in result.ev_dispatch.items():
        frame[f"ev_power_kw_{case}"] = r.total_power_kw
    return frame


def critical_asset_figure(result: StudyResult) -> Figure:
    """The critical asset's loading over the detail period, per case, with its limit.

    Built on a :class:`matplotlib.figure.Figure` (no pyplot state, no backend switch).
    """
    info = result.summary.critical_asset
    col = result.feeder.assets.index.get_loc(info.asset_id)
    fig = Figure(figsize=(10, 4.5), dpi=110)
    ax = fig.add_subplot()
    colors = {"base": "0.55", "charging": "tab:red", "v2g": "tab:blue"}
    for case, loading in result.loading_pct.items():
        strategy = result.horizon.strategies[case]
        label = "no EVs" if strategy is None else f"{case} ({strategy})"
        ax.plot(result.time_index, loading[:, col], label=label, color=colors.get(case), lw=1.1)
    limit = info.limit_pct if info.limit_pct is not None else float("nan")
    ax.axhline(limit, color="k", ls="--", lw=1, label=f"planning limit {limit:g} %")
    ax.set_ylabel("loading [% of rating]")
    ax.set_title(
        f"{result.feeder.name} {result.config.year}: {info.name} "
        f"(rating {info.rating_kva:.0f} kVA; {info.evs_downstream:.0f} EVs downstream, "
        f"{info.v2g_enrolled_evs_downstream:.0f} V2G-enrolled)",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _plot_critical(result: StudyResult, path: Path) -> None:
    critical_asset_figure(result).savefig(path, format="png")

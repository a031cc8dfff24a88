"""Study and batch reports: Markdown and self-contained HTML.

:func:`write_report` turns a :class:`~gridplan.study.result.StudyResult` into ``report.md``
and ``report.html`` a planner can attach to a filing: the feeder, the assumptions with their
sources, results per asset, the valuation, the firmness of the V2G relief, sensitivity,
power-flow quality and the figures (linked from the Markdown, embedded as base64 in the
HTML, so the HTML file stands alone). Headline figures are read from the study's typed
summary (:class:`~gridplan.study.summary.StudySummary`), tables from the result's frames.

:func:`write_batch_report` writes the screening report of a batch from its consolidated
results table (one row per unit): feeders ranked by net deferral value, a screening
outcome per feeder, scenario comparison, failed units and a figure.

Both build one document (headings, paragraphs, tables, figures) in Python and render it
twice through jinja2 templates (``report.md.j2``, ``report.html.j2``, autoescaped), so the
two formats always say the same thing. Numbers are read from the result, never recomputed.
A study's ``report.html`` opens with a one-screen summary: :func:`headline_figures` (the
summary's own numbers) beside the interactive ``feeder_map.html`` (an iframe; the static
feeder map figure without the ``maps`` extra), above the detail, which starts with the
procure-or-build answer.

Re-branding: the templates are package data (``gridplan/outputs/templates``); a folder
given as ``templates_dir`` (``write_study``, :func:`write_report`,
:func:`write_batch_report`) or named by the ``GRIDPLAN_REPORT_TEMPLATES`` environment
variable overrides them file by file, e.g. ``header.html.j2`` (a logo), ``report.css``,
``footer.html.j2`` (docs/report_templates.md).
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd

from gridplan import __version__
from gridplan.core.errors import ConfigError
from gridplan.core.io import write_text
from gridplan.grid.profile_year import profile_year
from gridplan.outputs.figures import (
    BATCH_CAPTIONS,
    CAPTIONS,
    headline_label,
    parameter_label,
    range_text,
    write_batch_figures,
)
from gridplan.outputs.webmap import MAP_FILE
from gridplan.study.criteria import criteria_description
from gridplan.study.opportunities import MAX_TARGETED_ASSETS, program_costs

if TYPE_CHECKING:
    from pydantic import BaseModel

    from gridplan.grid.feeders import Feeder
    from gridplan.study.result import StudyResult

__all__ = [
    "MAX_ASSET_ROWS",
    "MAX_FAILED_ROWS",
    "REPORT_FILES",
    "TEMPLATES_ENV",
    "Document",
    "batch_document",
    "fmt_num",
    "fmt_pct",
    "fmt_rate",
    "fmt_share",
    "fmt_usd",
    "fmt_year",
    "headline_figures",
    "study_document",
    "template_environment",
    "write_batch_report",
    "write_report",
]

#: File names of a report.
REPORT_FILES = ("report.md", "report.html")
#: Most assets listed in the per-asset table of a study report (the rest: assets.csv).
MAX_ASSET_ROWS = 40
#: Most failed units listed in a batch report (the rest: manifest.csv).
MAX_FAILED_ROWS = 30


# --------------------------------------------------------------------------- formatting
def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt_num(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number with thousands separators and ``digits`` decimals ("—" when missing)."""
    if _missing(value):
        return "—"
    text = f"{float(value):,.{digits}f}"
    return f"{text} {unit}".rstrip() if unit else text


def fmt_usd(value: Any) -> str:
    """Dollars, no cents: ``$12,345`` / ``-$5,368`` ("—" when missing)."""
    if _missing(value):
        return "—"
    v = float(value)
    return f"-${abs(v):,.0f}" if v < 0 else f"${v:,.0f}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A percentage already in % (``140.3 %``)."""
    return fmt_num(value, digits, "%")


def fmt_share(value: Any, digits: int = 0) -> str:
    """A fraction as a percentage (``0.9`` -> ``90 %``)."""
    if _missing(value):
        return "—"
    return f"{float(value) * 100:.{digits}f} %"


def fmt_year(value: Any, none: str = "none in horizon") -> str:
    """A year, or ``none`` when missing."""
    return none if _missing(value) else str(int(float(value)))


def fmt_rate(value: Any) -> str:
    """A rate as a percentage with two decimals (``0.0687`` -> ``6.87 %``)."""
    if _missing(value):
        return "—"
    return f"{float(value) * 100:.2f} %"


# --------------------------------------------------------------------------- templates
#: Environment variable naming a folder of report templates that override the bundled ones
#: (a ``templates_dir`` argument takes precedence).
TEMPLATES_ENV = "GRIDPLAN_REPORT_TEMPLATES"


def _md_cell(text: Any) -> str:
    """A Markdown table cell: pipes escaped, line breaks as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def template_environment(templates_dir: str | Path | None = None) -> jinja2.Environment:
    """The jinja2 environment of the reports.

    Templates are looked up in ``templates_dir`` first (else the folder named by the
    ``GRIDPLAN_REPORT_TEMPLATES`` environment variable, when set), then in the bundled
    ``gridplan/outputs/templates`` (package data), so a utility overrides only the files it
    re-brands (docs/report_templates.md). HTML templates (``*.html.j2``) are autoescaped.

    Parameters
    ----------
    templates_dir
        A folder of templates overriding the bundled ones of the same name.

    Raises
    ------
    ConfigError
        ``templates_dir`` (or the environment variable's folder) is not a folder.
    """
    loaders: list[jinja2.BaseLoader] = []
    folder = templates_dir if templates_dir is not None else os.environ.get(TEMPLATES_ENV)
    if folder:
        if not Path(folder).is_dir():
            raise ConfigError(
                f"report templates folder {folder} is not a folder"
                + ("" if templates_dir is not None else f" (environment {TEMPLATES_ENV})")
            )
        loaders.append(jinja2.FileSystemLoader(str(folder)))
    loaders.append(jinja2.PackageLoader("gridplan.outputs", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md_cell"] = _md_cell
    return env


# --------------------------------------------------------------------------- document
@dataclass
class Document:
    """A report as a list of blocks, rendered to Markdown and to self-contained HTML by the
    jinja2 templates ``report.md.j2`` and ``report.html.j2``.

    Blocks: ``("h", (level, text))``, ``("p", text)``, ``("ul", items)``,
    ``("table", (headers, rows, align))``, ``("figure", (file, caption))``. ``headline``
    holds the (label, value) pairs of the one-screen summary at the top of the HTML
    (study reports: the summary's headline figures), ``map`` its map: ``("iframe",
    file)`` for an interactive map beside the report, ``("image", file)`` for a figure.
    """

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    headline: list[tuple[str, str]] = field(default_factory=list)
    map: tuple[str, str] | None = None

    def h(self, level: int, text: str) -> None:
        """Add a heading (level 2-4)."""
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        """Add a paragraph (plain text)."""
        self.blocks.append(("p", text))

    def ul(self, items: Iterable[str]) -> None:
        """Add a bulleted list."""
        self.blocks.append(("ul", list(items)))

    def table(
        self, headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None
    ) -> None:
        """Add a table; ``align`` is one letter per column (``l``/``r``), default: first
        column left, the others right."""
        rows = [[str(c) for c in row] for row in rows]
        align = align or "l" + "r" * (len(headers) - 1)
        self.blocks.append(("table", (list(headers), rows, align)))

    def figure(self, file: str, caption: str) -> None:
        """Add a figure (file name in the report folder) with its caption."""
        self.blocks.append(("figure", (file, caption)))

    # ---- context and renderers
    def context(self, folder: Path | None = None) -> dict[str, Any]:
        """The templates' context: ``title``, ``blocks`` (dicts with ``kind`` and the
        block's fields; a figure's ``src`` is its base64 data URI when ``folder`` is given),
        ``headline``, ``map`` and ``generator``."""
        blocks: list[dict[str, Any]] = []
        for kind, data in self.blocks:
            if kind == "h":
                blocks.append({"kind": kind, "level": data[0], "text": data[1]})
            elif kind == "p":
                blocks.append({"kind": kind, "text": data})
            elif kind == "ul":
                blocks.append({"kind": kind, "entries": data})
            elif kind == "table":
                headers, rows, align = data
                style = ["left" if a == "l" else "right" for a in align]
                blocks.append({"kind": kind, "headers": headers, "rows": rows, "align": style})
            elif kind == "figure":
                file, caption = data
                src = _data_uri(folder / file) if folder is not None else file
                alt = file.rpartition(".")[0].replace("_", " ")
                blocks.append(
                    {"kind": kind, "file": file, "caption": caption, "src": src, "alt": alt}
                )
        page_map = None
        if self.map is not None:
            kind, file = self.map
            src = _data_uri(folder / file) if kind == "image" and folder is not None else file
            page_map = {"kind": kind, "src": src, "caption": _MAP_CAPTIONS[kind]}
        return {
            "title": self.title,
            "blocks": blocks,
            "headline": list(self.headline),
            "map": page_map,
            "generator": f"gridplan {__version__}",
        }

    def markdown(self, templates_dir: str | Path | None = None) -> str:
        """The document as GitHub-flavoured Markdown (figures linked by file name), from
        the template ``report.md.j2``."""
        env = template_environment(templates_dir)
        text = env.get_template("report.md.j2").render(self.context())
        return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"

    def html(self, folder: Path, templates_dir: str | Path | None = None) -> str:
        """The document as one HTML file (template ``report.html.j2``, autoescaped); figures
        from ``folder`` embedded as base64."""
        env = template_environment(templates_dir)
        text = env.get_template("report.html.j2").render(self.context(folder))
        return re.sub(r"\n{2,}", "\n", text).strip() + "\n"


#: Caption of the map of the one-screen summary, by kind.
_MAP_CAPTIONS = {
    "iframe": "Feeder map (feeder_map.html): assets by peak loading without V2G; hover for "
    "loading, year of need, deferral value, $/kW-yr and break-even incentive.",
    "image": "Feeder map: assets by peak loading (the interactive map needs "
    "pip install 'gridplan[maps]').",
}


def _data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}.get(
        path.suffix.lower(), "application/octet-stream"
    )
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _pick_figures(figures: Sequence[str], order: Sequence[str]) -> list[str]:
    """One file per figure (PNG preferred, else SVG), in ``order`` then the rest."""
    by_stem: dict[str, str] = {}
    for name in figures:
        stem, _, ext = name.rpartition(".")
        if ext.lower() not in ("png", "svg", "jpg"):
            continue
        if stem not in by_stem or ext.lower() == "png":
            by_stem[stem] = name
    stems = [s for s in order if s in by_stem] + [s for s in by_stem if s not in order]
    return [by_stem[s] for s in stems]


def _write(
    doc: Document, out: Path, figures: Sequence[str], templates_dir: str | Path | None = None
) -> list[str]:
    missing = [f for f in figures if not (out / f).is_file()]
    if missing:
        raise FileNotFoundError(f"figure(s) not found in {out}: {', '.join(missing)}")
    write_text(out / REPORT_FILES[0], doc.markdown(templates_dir))
    write_text(out / REPORT_FILES[1], doc.html(out, templates_dir))
    return list(REPORT_FILES)


# --------------------------------------------------------------------------- study report
def _source(model: BaseModel, name: str, default: str) -> str:
    """ "study file" when the study set the field, else the default's source."""
    return "study file" if name in model.model_fields_set else default


#: Program cost parameters of the assumptions table: field -> (label, value pattern, source
#: of the default).
_PROGRAM_SOURCES = {
    "upfront_incentive_usd_per_customer": (
        "Upfront incentive per enrolled customer",
        "${:,.0f}",
        "PG&E V2X pilot, residential",
    ),
    "performance_payment_usd_per_kwh": (
        "Performance payment (local export)",
        "${:g}/kWh",
        "default 0 (PG&E V2X pilot pays no per-kWh rate)",
    ),
    "event_payment_usd_per_kwh": (
        "Event payment",
        "${:g}/kWh",
        "CPUC Emergency Load Reduction Program (ELRP)",
    ),
    "capacity_payment_usd_per_kw_month": (
        "Capacity payment",
        "${:g}/kW-month",
        "default 0 (DSGS Option 3 rates depend on appropriations)",
    ),
    "battery_wear_usd_per_kwh": (
        "Battery wear",
        "${:g}/kWh exported",
        "default $83/kWh ÷ 3,650 cycles (weakly sourced; vary in sensitivity)",
    ),
}


def _growth(result: StudyResult) -> tuple[str, str]:
    """Base-load growth as text [%/yr or factors] and its source."""
    growth = result.config.load_growth
    if growth.factors:
        text = "factors " + ", ".join(f"{k}: {v:g}" for k, v in growth.factors.items())
        return text, "study file"
    if growth.rate is not None:
        return fmt_rate(growth.rate) + "/yr", "study file"
    return fmt_rate(result.feeder.growth_rate) + "/yr", "feeder spec (planning assumption)"


def _setup_rows(result: StudyResult) -> list[list[str]]:
    """Assumption rows of the study's set-up: years, draws, seed, period, load growth."""
    cfg = result.config
    period = result.summary.period
    years = cfg.years()
    span = str(years[0]) if years[0] == years[-1] else f"{years[0]}–{years[-1]}"
    return [
        ["Planning (detail) year", str(cfg.year), "study file"],
        ["Base year of the profiles", str(cfg.base_year), _source(cfg, "base_year", "default")],
        ["Planning horizon", span, _source(cfg, "horizon", "default: the planning year")],
        ["Monte Carlo draws per year", str(cfg.horizon.draws), _source(cfg, "horizon", "default")],
        [
            "Deferral confidence",
            fmt_share(cfg.horizon.confidence),
            _source(cfg.horizon, "confidence", "default (90 % of draws)"),
        ],
        ["Random seed", str(cfg.seed), _source(cfg, "seed", "default")],
        [
            "Simulated period",
            f"{cfg.period.kind.replace('_', ' ')}: {period.start} to {period.end} "
            f"({period.steps} steps of {fmt_num(period.step_h, 2)} h)",
            _source(cfg, "period", "default: 7 days around the feeder's base-load peak"),
        ],
        ["Base-load growth", *_growth(result)],
    ]


def _adoption_text(adoption: Any) -> str:
    """EV adoption [EVs per household] of an adoption spec, as text."""
    if adoption.kind == "constant":
        return f"{adoption.value:g} EVs per household (constant)"
    if adoption.kind == "logistic":
        return (
            f"logistic: ceiling {adoption.ceiling:g} EVs/household, midpoint "
            f"{adoption.midpoint_year:g}, steepness {adoption.steepness:g}/yr"
        )
    if adoption.kind == "linear":
        return (
            f"linear: {adoption.start_value:g} in {adoption.start_year} to "
            f"{adoption.end_value:g} in {adoption.end_year} EVs/household"
        )
    return "table: " + ", ".join(f"{k}: {v:g}" for k, v in (adoption.table or {}).items())


def _fleet_rows(result: StudyResult) -> list[list[str]]:
    """Assumption rows of the EV fleet: adoption, V2G shares, mixes, SOC, behaviour."""
    fleet = result.config.fleet
    adoption_set = bool({"adoption", "evs_per_household"} & fleet.model_fields_set)
    rows = [
        [
            "EV adoption",
            _adoption_text(fleet.adoption_spec()),
            "study file (scenario assumption)"
            if adoption_set
            else "default 0.5 EV/household (assumption)",
        ]
    ]
    if fleet.zones:
        rows.append(["Adoption zones", str(fleet.zones), "study file"])
    capable = (
        fmt_share(fleet.v2g_capable_share)
        if fleet.v2g_capable_share is not None
        else "from vehicle mix"
    )
    mix = (
        ", ".join(f"{k} {v:.0%}" for k, v in fleet.vehicle_mix.items())
        + "; "
        + ", ".join(f"{k} {v:.0%}" for k, v in fleet.charger_mix.items())
    )
    rows += [
        [
            "V2G-capable share of EVs",
            capable,
            _source(fleet, "v2g_capable_share", "vehicle catalog (gridplan/data/vehicles.csv)"),
        ],
        [
            "V2G enrollment (share of capable EVs)",
            fmt_share(fleet.v2g_enrolled_share),
            _source(fleet, "v2g_enrolled_share", "default 50 % (assumption)"),
        ],
        [
            "Vehicle and charger mix",
            mix,
            _source(
                fleet,
                "vehicle_mix",
                "default mix; each vehicle's and charger's figures cite their source in "
                "gridplan/data/vehicles.csv and chargers.csv",
            ),
        ],
        [
            "Reserve / departure target state of charge",
            f"{fleet.reserve_soc:.0%} / {fleet.target_soc:.0%}",
            _source(
                fleet, "reserve_soc", "default: typical V2G program reserve; target assumption"
            ),
        ],
        [
            "Charge / discharge efficiency",
            f"{fleet.charge_efficiency:.0%} / {fleet.discharge_efficiency:.0%}",
            _source(fleet, "charge_efficiency", "default: typical AC charging efficiency"),
        ],
        [
            "Driving and plug-in behaviour",
            f"weekday arrival {fleet.weekday.arrival_mean_h:g} h, departure "
            f"{fleet.weekday.departure_mean_h:g} h, {fleet.weekday.daily_miles_mean:g} mi/day",
            _source(fleet, "weekday", "NHTS 2017; US DOE VTO Fact of the Week #1047"),
        ],
    ]
    return rows


def _strategy_rows(disp: Any) -> list[list[str]]:
    """Assumption rows of the dispatch: strategies and the V2G event window."""
    months = (
        "all"
        if sorted(disp.event_months) == list(range(1, 13))
        else " ".join(map(str, disp.event_months))
    )
    return [
        [
            "Charging strategy (without V2G)",
            ", ".join(disp.charging_list()),
            _source(disp, "charging", "default: unmanaged"),
        ],
        ["V2G strategy", ", ".join(disp.v2g_list()), _source(disp, "v2g", "default: v2g_event")],
        [
            "V2G event window",
            f"{disp.window_start_h:g}–{disp.window_end_h:g} h; months: {months}",
            _source(disp, "window_start_h", "default: CPUC ELRP event hours, 4-9 pm"),
        ],
    ]


def _strategy_option_rows(disp: Any) -> list[list[str]]:
    """Assumption rows of the options of the strategies in use (event days, rate, target
    of grid-aware strategies, objective)."""
    rows = []
    strategies = {*disp.charging_list(), *disp.v2g_list()}
    events = getattr(disp, "events", None)
    if events is not None and "v2g_event" in strategies:
        events_text = {
            "every_day": "the window on every day of the event months",
            "elrp": "event days drawn per year and draw within the CPUC ELRP rules",
        }.get(str(events), f"calendar file {events}")
        rows.append(["V2G event days", events_text, _source(disp, "events", "default")])
    rate = getattr(disp, "rate", None)
    if rate is not None and "tou" in strategies:
        rows.append(
            ["Time-of-use rate (tou charging)", str(rate), _source(disp, "rate", "default")]
        )
    grid_aware = strategies & {"smart", "v2g_peak_shave", "v2g_optimal"}
    fraction = getattr(disp, "target_fraction", None)
    if fraction is not None and grid_aware:
        rows.append(
            [
                "Planning target of grid-aware strategies",
                f"{float(fraction):.0%} of each asset's limit ({', '.join(sorted(grid_aware))})",
                _source(disp, "target_fraction", "default: margin for reactive power (assumption)"),
            ]
        )
    objective = getattr(disp, "objective", None)
    if objective is not None and "v2g_optimal" in strategies:
        rows.append(
            ["v2g_optimal objective", str(objective), _source(disp, "objective", "default")]
        )
    return rows


def _criteria_rows(result: StudyResult) -> list[list[str]]:
    """Assumption rows of the planning criteria and the financial parameters."""
    crit = result.config.criteria
    val = result.config.valuation
    mcos = "National Grid / Niagara Mohawk 2025 marginal cost of service study (NY PSC)"
    thermal = crit.trafo_criterion != "loading"
    return [
        [
            "Need criterion (what decides a need)",
            criteria_description(crit),
            _source(crit, "trafo_criterion", "default: no hour over the nameplate limit")
            if not thermal
            else "IEEE C57.91-2011 Clause 7; parameters: gridplan/data/thermal_parameters.csv",
        ],
        [
            "Voltage band (service points)",
            f"{crit.vm_min_pu:g}–{crit.vm_max_pu:g} pu",
            _source(crit, "vm_min_pu", "ANSI C84.1 Range A service voltage"),
        ],
        [
            "Discount rate (nominal)",
            fmt_rate(val.discount_rate),
            _source(val, "discount_rate", mcos),
        ],
        ["Cost escalation", fmt_rate(val.escalation_rate), _source(val, "escalation_rate", mcos)],
        ["Dollar year", str(val.dollar_year), _source(val, "dollar_year", "default")],
    ]


def _program_rows(program: Any) -> list[list[str]]:
    """Assumption rows of the V2G program's prices and payments (``None``: no program)."""
    if program is None:
        return [["V2G program costs", "not given: gross deferral value only", "study file"]]
    rows = [
        [
            "Charging energy price",
            f"${program.charging_energy_price_usd_per_kwh:g}/kWh",
            program.charging_energy_price_source,
        ]
    ]
    for name, (label, pattern, default) in _PROGRAM_SOURCES.items():
        rows.append(
            [label, pattern.format(getattr(program, name)), _source(program, name, default)]
        )
    rows.append(
        [
            "Event / capacity payments funded by the utility",
            f"{'yes' if program.event_payments_utility_funded else 'no'} / "
            f"{'yes' if program.capacity_payments_utility_funded else 'no'}",
            _source(
                program,
                "event_payments_utility_funded",
                "default: ELRP is funded statewide, capacity payment by the utility",
            ),
        ]
    )
    return rows


def _assumption_rows(result: StudyResult) -> list[list[str]]:
    """Every assumption of the study with its value and source (parameter, value, source)."""
    disp = result.config.dispatch
    return [
        *_setup_rows(result),
        *_fleet_rows(result),
        *_strategy_rows(disp),
        *_strategy_option_rows(disp),
        *_criteria_rows(result),
        *_program_rows(result.config.program),
    ]


def _upgrade_rows(result: StudyResult) -> list[list[str]]:
    upgrades = result.feeder.upgrades
    if upgrades is None or upgrades.empty:
        return []
    kinds = result.feeder.assets.kind.reindex(upgrades.asset_id).to_numpy()
    frame = upgrades.assign(kind=kinds)
    rows = []
    for (_option, kind, source, dollar_year), group in frame.groupby(
        ["option", "kind", "source", "dollar_year"], sort=True
    ):
        costs = group.cost_usd
        ratings = group.new_rating_kva
        cost = (
            fmt_usd(costs.iloc[0])
            if costs.nunique() == 1
            else f"{fmt_usd(costs.min())}–{fmt_usd(costs.max())}"
        )
        rating = (
            fmt_num(ratings.iloc[0], 0)
            if ratings.nunique() == 1
            else f"{fmt_num(ratings.min(), 0)}–{fmt_num(ratings.max(), 0)}"
        )
        rows.append([str(kind), f"{len(group)}", rating, cost, str(dollar_year), str(source)])
    return rows


def _asset_rows(result: StudyResult) -> tuple[list[list[str]], int]:
    a = result.assets
    cases = result.horizon.cases
    need = a.year_of_need_charging_p50.notna()
    over = np.zeros(len(a), dtype=bool)
    for case in cases:
        over |= (a[f"peak_loading_pct_{case}"] > a.limit_pct).to_numpy()
    chosen = a[need.to_numpy() | over].copy()
    chosen["_ratio"] = chosen.peak_loading_pct_charging / chosen.limit_pct
    chosen = chosen.sort_values(
        ["year_of_need_charging_p50", "_ratio"], ascending=[True, False], na_position="last"
    )
    rest = len(chosen) - MAX_ASSET_ROWS
    rows = []
    for asset_id, r in chosen.head(MAX_ASSET_ROWS).iterrows():
        deferral = r.get("deferral_years_v2g")
        capped = bool(r.get("deferral_capped_v2g", False))
        deferral_text = fmt_num(deferral, 0)
        if capped and deferral_text != "—":
            deferral_text = "≥ " + deferral_text
        rows.append(
            [
                f"{r['name']} ({asset_id})",
                fmt_num(r.rating_kva, 0),
                fmt_num(r.limit_pct, 0),
                fmt_num(r.peak_loading_pct_base, 1),
                fmt_num(r.peak_loading_pct_charging, 1),
                fmt_num(r.peak_loading_pct_v2g, 1),
                f"{fmt_num(r.evs_downstream, 0)} ({fmt_num(r.v2g_enrolled_evs_downstream, 0)})",
                f"{fmt_year(r.year_of_need_charging_p50, '—')} "
                f"({fmt_year(r.year_of_need_charging_p90, '—')})",
                fmt_year(r.year_of_need_v2g_p50, "—"),
                deferral_text,
                fmt_share(r.get("firmness_v2g_end")),
                fmt_num(r.get("new_rating_kva"), 0),
                fmt_usd(r.get("cost_usd_dollar_year")),
                fmt_usd(r.get("deferral_value_usd_v2g")),
            ]
        )
    return rows, max(rest, 0)


_ECON_ROWS = (
    ("deferral_value_usd", "Gross deferral value (PV)", fmt_usd),
    ("annual_deferral_value_usd", "Annual deferral value (levelized)", fmt_usd),
    ("v2g_capacity_kw", "V2G capacity that meets the needs [kW]", lambda v: fmt_num(v, 1)),
    ("value_usd_per_kw_yr", "Value per kW-year [USD/kW-yr]", lambda v: fmt_num(v, 2)),
    ("enrolled_evs", "Enrolled EVs (median, last year)", lambda v: fmt_num(v, 0)),
    ("value_usd_per_enrolled_ev_yr", "Value per enrolled EV-year [USD]", lambda v: fmt_num(v, 2)),
    ("v2g_export_kwh_per_yr", "V2G export [kWh/yr]", lambda v: fmt_num(v, 0)),
    ("extra_charging_kwh_per_yr", "Extra charging [kWh/yr]", lambda v: fmt_num(v, 0)),
    ("upfront_incentives_pv_usd", "Upfront incentives (PV)", fmt_usd),
    ("performance_payments_pv_usd", "Performance payments (PV)", fmt_usd),
    ("event_payments_pv_usd", "Event payments (PV, whoever funds them)", fmt_usd),
    ("capacity_payments_pv_usd", "Capacity payments (PV, whoever funds them)", fmt_usd),
    ("ratepayer_cost_pv_usd", "Ratepayer cost (PV)", fmt_usd),
    ("ratepayer_net_benefit_pv_usd", "Ratepayer net benefit (PV)", fmt_usd),
    ("ratepayer_benefit_cost_ratio", "Ratepayer benefit/cost ratio", lambda v: fmt_num(v, 3)),
    ("participant_benefit_cost_ratio", "Participant benefit/cost ratio", lambda v: fmt_num(v, 3)),
    ("participant_revenue_pv_usd", "Participant revenue (PV)", fmt_usd),
    ("participant_cost_pv_usd", "Participant cost (PV)", fmt_usd),
    ("participant_net_benefit_pv_usd", "Participant net benefit (PV)", fmt_usd),
    ("participant_net_per_ev_pv_usd", "Participant net benefit per EV (PV)", fmt_usd),
)


def _need_sentence(result: StudyResult) -> str:
    """What the study found at the critical asset: its need and the V2G deferral."""
    crit = result.summary.critical_asset
    conf = result.config.horizon.confidence
    name = f"{crit.name} ({crit.asset_id})"
    yon = crit.year_of_need_charging
    if yon is None:
        return (
            f"The critical asset {name} has no need for an upgrade within the horizon, with or "
            "without V2G: there is nothing to defer."
        )
    deferral = crit.deferral_years
    strategy = result.horizon.strategies.get("v2g")
    if deferral is None or _missing(deferral) or deferral <= 0:
        return (
            f"The critical asset {name} needs an upgrade in {yon} without V2G (P50); V2G "
            f"({strategy}) does not defer it: the deferral reached in at least {conf:.0%} "
            f"of draws is {fmt_num(deferral, 0)} years."
        )
    at_least = "at least " if crit.deferral_capped else ""
    return (
        f"The critical asset {name} needs an upgrade in {yon} without V2G (P50); V2G "
        f"({strategy}) defers it by {at_least}{fmt_num(deferral, 0)} year(s) in at "
        f"least {conf:.0%} of draws."
    )


def _headline(result: StudyResult) -> list[str]:
    """A few plain sentences: what the study found (non-converged power flows first)."""
    lines = [*_non_convergence_sentences(result), _need_sentence(result)]
    for case, econ in result.summary.economics.items():
        text = (
            f"{case}: gross deferral value {fmt_usd(econ.deferral_value_usd)} "
            f"(present worth, {result.config.valuation.dollar_year} USD, all monitored assets)"
        )
        if econ.program is not None:
            text += (
                f"; ratepayer cost {fmt_usd(econ.ratepayer_cost_pv_usd)}, net benefit "
                f"{fmt_usd(econ.ratepayer_net_benefit_pv_usd)}"
            )
        lines.append(text + ".")
    return lines


def _non_convergence_sentences(result: StudyResult) -> list[str]:
    """A warning when power-flow steps did not converge, and which needs rest on them."""
    s = result.summary
    steps = {case: pf.non_converged_steps for case, pf in s.power_flow.items()}
    if not any(steps.values()):
        return []
    counts = ", ".join(f"{case} {n}" for case, n in steps.items())
    text = (
        f"Non-convergence: power-flow steps that did not converge ({counts}) count as "
        "over every asset's limit in the EV cases."
    )
    resting = sorted(
        {
            str(asset)
            for case in result.horizon.cases
            if f"need_from_non_convergence_{case}" in result.assets.columns
            for asset in result.assets.index[result.assets[f"need_from_non_convergence_{case}"]]
        }
    )
    if resting:
        shown = ", ".join(resting[:8]) + (" and more" if len(resting) > 8 else "")
        text += f" Need (non-convergence), unless a finer study proves otherwise: {shown}."
    return [text]


def _intro_text(result: StudyResult) -> str:
    """The opening paragraph: years, draws, seed, generation date and version, cases."""
    cfg = result.config
    s = result.summary
    h = result.horizon
    cases = "; ".join(f"{c} = {s.cases[c]}" for c in h.cases)
    return (
        f"Planning year {cfg.year}, horizon {s.horizon.start}–{s.horizon.end}, "
        f"{s.horizon.draws} Monte Carlo draw(s), "
        + (
            "each one future followed through the horizon (adopters stay adopters, "
            "enrollment persists; years of need are first years along each future), "
            if s.horizon.draws_as == "trajectories"
            else "each year drawn independently, "
        )
        + f"seed {cfg.seed}. Generated "
        f"{date.today().isoformat()} by gridplan {s.gridplan_version}. Cases: {cases}."
    )


def _critical_rows(result: StudyResult) -> list[list[str]]:
    """Summary rows of the critical asset: rating, EVs, peaks, needs, deferral, value."""
    cfg = result.config
    crit = result.summary.critical_asset
    rows = [
        ["Critical asset", f"{crit.name} ({crit.asset_id})"],
        [
            "Rating / planning limit",
            f"{fmt_num(crit.rating_kva, 0)} kVA / {fmt_pct(crit.limit_pct, 0)}",
        ],
        [
            "EVs downstream (V2G-enrolled), " + str(cfg.year),
            f"{fmt_num(crit.evs_downstream, 0)} ({fmt_num(crit.v2g_enrolled_evs_downstream, 0)})",
        ],
    ]
    for case in result.horizon.cases:
        rows.append([f"Peak loading {cfg.year}, {case}", fmt_pct(crit.peak_loading_pct[case])])
    rows += [
        [
            "Year of need without V2G, P50 / P90",
            f"{fmt_year(crit.year_of_need_charging)} / {fmt_year(crit.year_of_need_charging_p90)}",
        ],
        ["Year of need with V2G, P50", fmt_year(crit.year_of_need_v2g)],
        [
            f"Deferral reached in {cfg.horizon.confidence:.0%} of draws",
            ("≥ " if crit.deferral_capped else "") + fmt_num(crit.deferral_years, 0) + " yr",
        ],
        *(
            [
                ["Year of need, managed charging only (V1G), P50", fmt_year(crit.year_of_need_v1g)],
                [
                    f"Deferral parts in {cfg.horizon.confidence:.0%} of draws: V1G / export",
                    f"{fmt_num(crit.deferral_years_v1g_part, 0)} yr / "
                    f"{fmt_num(crit.deferral_years_export_part, 0)} yr (each its own quantile "
                    "across draws; within one draw the parts add up)",
                ],
            ]
            if "v1g" in result.horizon.cases
            else []
        ),
        ["Firmness with V2G, last horizon year", fmt_share(crit.firmness_v2g_end)],
        *(
            [
                [
                    "Without availability effects (every enrolled EV answers at full power): "
                    "year of need P50 / deferral / firmness",
                    f"{fmt_year(crit.year_of_need_v2g_perfect)} / "
                    f"{fmt_num(crit.deferral_years_perfect, 0)} yr / "
                    f"{fmt_share(crit.firmness_v2g_perfect_end)}",
                ]
            ]
            if "v2g_perfect" in result.horizon.cases
            else []
        ),
        [
            "Upgrade",
            f"to {fmt_num(crit.upgrade_new_rating_kva, 0)} kVA, "
            f"{fmt_usd(crit.upgrade_cost_usd)} ({cfg.valuation.dollar_year} USD)",
        ],
        ["Deferral value, critical asset", fmt_usd(crit.deferral_value_usd)],
    ]
    return rows


def _feeder_total_rows(result: StudyResult) -> list[list[str]]:
    """Summary rows of the whole feeder: assets with a need or over the limit, values."""
    s = result.summary
    over = ", ".join(f"{c} {n}" for c, n in s.assets_over_limit.items())
    rows = [
        [
            "Assets monitored / with a need in the horizon",
            f"{s.assets_monitored} / {s.assets_with_need_in_horizon}",
        ],
        [f"Assets over their limit in {result.config.year}", over],
    ]
    for case, value in s.deferral_value_usd_total.items():
        rows.append([f"Deferral value, all assets ({case})", fmt_usd(value)])
    for case, econ in s.economics.items():
        if econ.program is not None:
            rows.append(
                [f"Ratepayer net benefit ({case})", fmt_usd(econ.ratepayer_net_benefit_pv_usd)]
            )
    return rows


def _summary_section(doc: Document, result: StudyResult) -> None:
    s = result.summary
    doc.h(2, "Summary")
    doc.ul(_headline(result))
    if s.notes:
        doc.h(3, "Read these notes with the numbers")
        doc.ul([str(note) for note in s.notes])
    doc.table(["Item", "Value"], [*_critical_rows(result), *_feeder_total_rows(result)], "ll")


def _feeder_section(doc: Document, feeder: Feeder) -> None:
    net = feeder.net
    spec = feeder.spec
    source = "—"
    if spec is not None:
        ns = spec.network
        ref = {
            "simbench": ns.code,
            "pandapower": ns.function,
            "json": ns.path,
            "builder": ns.builder,
        }
        source = f"{ns.source}: {ref.get(ns.source)}"
    kinds = ", ".join(f"{n} {k}" for k, n in feeder.assets.kind.value_counts().items())
    year = profile_year(feeder.spec, feeder.time_index)
    profile_rows = [["Profile year", year.label]]
    profile_rows += [["Climate", year.climate]] if year.climate else []
    profile_rows += [["Profile data", "; ".join(year.sources)]] if year.sources else []
    profile_rows += [["Customer diversity", year.diversity]] if year.diversity else []
    doc.h(2, "Feeder")
    doc.p(feeder.description or feeder.name)
    doc.table(
        ["Item", "Value"],
        [
            ["Feeder", feeder.name],
            ["Network source", source],
            ["Spec file", str(feeder.spec_path) if feeder.spec_path else "built in Python"],
            [
                "Buses / lines / transformers / loads",
                f"{len(net.bus)} / {len(net.line)} / {len(net.trafo)} / {len(net.load)}",
            ],
            ["Households", f"{int(np.sum(feeder.households)):,}"],
            ["Monitored assets", f"{len(feeder.assets)} ({kinds})"],
            ["Profile step", f"{feeder.step_h:g} h"],
            *profile_rows,
            [
                "Coordinates",
                "yes (EPSG:4326)"
                if feeder.bus_geo is not None
                else "schematic coordinates of the model (no CRS): maps are schematic"
                if feeder.bus_xy is not None
                else "none: maps use a schematic layout",
            ],
        ],
        "ll",
    )


def _assumptions_section(doc: Document, result: StudyResult) -> None:
    doc.h(2, "Assumptions and sources")
    doc.table(["Parameter", "Value", "Source"], _assumption_rows(result), "lll")
    upgrade_rows = _upgrade_rows(result)
    if upgrade_rows:
        doc.h(3, "Upgrade options")
        doc.table(
            [
                "Kind",
                "Applies to (assets)",
                "New rating [kVA]",
                "Cost per unit",
                "Dollar year",
                "Source",
            ],
            upgrade_rows,
            "lrrrrl",
        )
    if result.summary.assumptions:
        doc.h(3, "Method notes")
        doc.ul(result.summary.assumptions)


#: Columns of the per-asset table of a study report.
_ASSET_HEADERS = (
    "Asset",
    "Rating [kVA]",
    "Limit [%]",
    "Peak no EVs [%]",
    "Peak w/o V2G [%]",
    "Peak with V2G [%]",
    "EVs (enrolled)",
    "Need w/o V2G P50 (P90)",
    "Need with V2G",
    "Deferral [yr]",
    "Firmness",
    "Upgrade [kVA]",
    "Upgrade cost",
    "Deferral value",
)


def _assets_section(doc: Document, result: StudyResult) -> None:
    cfg = result.config
    doc.h(2, "Results per asset")
    asset_rows, rest = _asset_rows(result)
    doc.p(
        f"Loading in {cfg.year} (median over draws), years of need over the horizon "
        f"(P50, P90 in brackets), deferral reached in {cfg.horizon.confidence:.0%} of draws "
        "(≥: capped at the horizon), firmness = share of draws without a need with V2G in the "
        f"last horizon year, deferral value in present worth ({cfg.valuation.dollar_year} "
        f"USD). {result.summary.assets_with_need_in_horizon} of {len(result.assets)} assets "
        "need an upgrade within the horizon; assets without a need and within their limit are "
        "in assets.csv only."
    )
    if not asset_rows:
        doc.p("No monitored asset is over its limit or needs an upgrade within the horizon.")
        return
    doc.table(_ASSET_HEADERS, asset_rows)
    if rest:
        doc.p(f"… and {rest} more assets with a need (see assets.csv).")


def _critical_need_section(doc: Document, result: StudyResult) -> None:
    crit_id = result.summary.critical_asset.asset_id
    if crit_id not in result.assets.index:
        return
    r = result.assets.loc[crit_id]
    doc.h(3, f"Need and V2G resource at the critical asset (in {fmt_year(r.get('need_year'))})")
    doc.table(
        ["Quantity", "Value"],
        [
            ["Peak excess over the limit [kW]", fmt_num(r.get("peak_excess_kw"), 1)],
            ["Largest daily excess energy [kWh]", fmt_num(r.get("max_daily_excess_kwh"), 1)],
            ["Longest excess [h]", fmt_num(r.get("longest_excess_h"), 2)],
            ["Days with an excess (simulated period)", fmt_num(r.get("days_with_excess"), 0)],
            [
                "Months / hours with an excess",
                f"{r.get('excess_months') or '—'} / {r.get('excess_hours') or '—'}",
            ],
            [
                "V2G power / energy required [kW / kWh]",
                f"{fmt_num(r.get('v2g_required_kw'), 1)} / {fmt_num(r.get('v2g_required_kwh'), 1)}",
            ],
            ["Enrolled EVs required", fmt_num(r.get("v2g_evs_required"), 0)],
            [
                "Draws whose enrolled EVs downstream have that resource",
                fmt_share(r.get("v2g_resource_available_share")),
            ],
        ],
        "ll",
    )


def _payment_notes(economics: pd.DataFrame) -> list[str]:
    """Per case: whether event and capacity payments count as a ratepayer cost."""
    notes = []
    for case in economics.index:
        ev = bool(economics.at[case, "event_payments_in_ratepayer_cost"])
        cap = bool(economics.at[case, "capacity_payments_in_ratepayer_cost"])
        notes.append(
            f"{case}: event payments {'counted' if ev else 'not counted'} as a ratepayer "
            f"cost, capacity payments {'counted' if cap else 'not counted'}"
        )
    return notes


def _valuation_section(doc: Document, result: StudyResult) -> None:
    valuation = result.summary.valuation
    doc.h(2, "Valuation")
    doc.p(
        f"Method: {valuation['method']}. Discount rate "
        f"{fmt_rate(valuation['discount_rate'])}, escalation "
        f"{fmt_rate(valuation['escalation_rate'])}, {result.config.valuation.dollar_year} USD."
    )
    economics = result.economics
    if economics is None or economics.empty:
        doc.p("No economics table in the result.")
        return
    econ_rows = [
        [label, *(formatter(economics.at[c, column]) for c in economics.index)]
        for column, label, formatter in _ECON_ROWS
        if column in economics.columns
    ]
    strategies = result.horizon.strategies
    doc.table(
        ["Quantity", *[f"{c} ({strategies.get(str(c))})" for c in economics.index]], econ_rows
    )
    if "event_payments_in_ratepayer_cost" in economics.columns:
        doc.ul(_payment_notes(economics))


def _firmness_rows(result: StudyResult, v2g_cases: list[str]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the critical asset's probability of need and firmness by year."""
    needs = result.needs
    one = needs[needs.asset_id == result.summary.critical_asset.asset_id]
    pivot = one.pivot_table(index="year", columns="case", values="need_probability")
    by_year = one.pivot_table(index="year", columns="case", values="need_by_year_probability")
    headers = ["Year"]
    for case in ["charging", *v2g_cases]:
        headers += [f"P(need) {case}", f"P(need by year) {case}"]
    headers += [f"Firmness {c}" for c in v2g_cases]
    rows = []
    for year in pivot.index:
        row = [str(int(year))]
        for case in ["charging", *v2g_cases]:
            row += [fmt_share(pivot.at[year, case]), fmt_share(by_year.at[year, case])]
        row += [fmt_share(1.0 - pivot.at[year, c]) for c in v2g_cases]
        rows.append(row)
    return headers, rows


def _firmness_section(doc: Document, result: StudyResult) -> None:
    doc.h(2, "Firmness of the V2G relief")
    doc.p(
        "Probability of need = share of Monte Carlo draws in which the critical asset fails "
        "the loading criterion in that year; firmness = 1 − probability of need with V2G. "
        f"The deferral is the one reached in at least {result.config.horizon.confidence:.0%} "
        "of draws."
    )
    if not result.needs.empty:
        v2g_cases = [c for c in result.horizon.cases if c.startswith("v2g")]
        doc.table(*_firmness_rows(result, v2g_cases))


def _sensitivity_section(doc: Document, result: StudyResult) -> None:
    table = result.sensitivity
    if table is None or table.empty:
        return
    doc.h(2, "Sensitivity")
    doc.p(
        f"One parameter at a time at its low and high value, the others at base; result: "
        f"{headline_label(result)} of the primary V2G case "
        f"({result.config.valuation.dollar_year} USD)."
    )
    rows = []
    for _, r in table.iterrows():
        varied = r.low_value != r.high_value
        rows.append(
            [
                parameter_label(str(r.parameter)),
                range_text(str(r.parameter), r.low_value, r.high_value) if varied else "not varied",
                fmt_usd(r.result_low),
                fmt_usd(r.result_base),
                fmt_usd(r.result_high),
                fmt_usd(r.swing),
            ]
        )
    doc.table(["Parameter", "Low – high", "Result low", "Base", "Result high", "Swing"], rows)


def _power_flow_section(doc: Document, result: StudyResult) -> None:
    power_flow = result.summary.power_flow
    rows = [
        [
            case,
            str(pf.non_converged_steps),
            fmt_num(pf.min_vm_pu, 4),
            fmt_num(pf.max_vm_pu, 4),
            fmt_share(pf.voltage_need_probability_end),
        ]
        for case, pf in power_flow.items()
    ]
    doc.h(2, "Power flow and fleet checks")
    doc.table(
        [
            "Case",
            "Non-converged steps (all years, draws)",
            "Min voltage [pu]",
            "Max voltage [pu]",
            "P(voltage need), last year",
        ],
        rows,
    )
    bad = sum(pf.non_converged_steps for pf in power_flow.values())
    if bad:
        doc.p(
            f"Warning: {bad} power-flow steps did not converge; their loadings are not counted. "
            "Check the feeder and the EV load before relying on the results."
        )


def _fleet_check_table(doc: Document, result: StudyResult) -> None:
    fl = result.summary.fleet
    doc.table(
        ["Fleet, " + str(result.config.year) + " (the critical asset's median draw)", "Value"],
        [
            [
                "Households / EVs / V2G-enrolled",
                f"{fl.households} / {fl.evs} / {fl.v2g_enrolled_evs}",
            ],
            ["Charging energy without V2G [kWh]", fmt_num(fl.charging_energy_kwh, 0)],
            [
                "V2G export / charging with V2G [kWh]",
                f"{fmt_num(fl.v2g_export_kwh, 0)} / {fmt_num(fl.v2g_case_charging_energy_kwh, 0)}",
            ],
            [
                "Departures short of target (count, kWh)",
                f"{fl.departures_short}, {fmt_num(fl.departure_shortfall_kwh, 1)}",
            ],
        ],
        "ll",
    )


def _figures_section(doc: Document, figures: Sequence[str], captions: Mapping[str, str]) -> None:
    """The figures (one file each, in ``captions`` order, then the rest) with captions."""
    chosen = _pick_figures(figures, list(captions))
    if chosen:
        doc.h(2, "Figures")
        for file in chosen:
            stem = file.rpartition(".")[0]
            doc.figure(file, captions.get(stem, stem.replace("_", " ")))


#: Rows of the procure-or-build table in the report (the CSV has every asset).
MAX_OPPORTUNITY_ROWS = 15


def _opportunity_row(r: Any) -> list[str]:
    enrolled = "—" if _missing(r.enrolled_needed) else fmt_num(r.enrolled_needed, 0)
    decision = r.tier if not r.reason else f"{r.tier}: {r.reason}"
    return [
        str(r.asset_id),
        f"{fmt_year(r.need_year_p50, '—')} ({fmt_year(r.need_year_p90, '—')})",
        f"{fmt_num(r.need_kw, 1)} / {fmt_num(r.need_kwh, 1)} / {fmt_num(r.need_duration_h, 2)}",
        f"{fmt_num(r.evs_downstream, 0)} ({fmt_num(r.v2g_capable_downstream, 0)})",
        enrolled,
        str(r.plan),
        fmt_num(r.deferral_years, 0),
        fmt_usd(r.deferral_value_usd),
        fmt_usd(r.program_cost_usd),
        fmt_usd(r.net_benefit_usd),
        fmt_usd(r.break_even_incentive_usd) if r.break_even_incentive_usd != math.inf else "any",
        fmt_share(r.certainty),
        decision,
    ]


def _procure_or_build_section(doc: Document, result: StudyResult) -> None:
    """The report's opening: procure (targeted V2G) or build, per constrained asset."""
    table = result.opportunities
    strategy = result.horizon.strategies.get("v2g")
    if table is None:
        if strategy in ("v2g_peak_shave", "v2g_event", "v2g_optimal"):
            doc.h(2, "Procure or build")
            doc.p(
                "The targeted V2G search per asset was not run: more than "
                f"{MAX_TARGETED_ASSETS} assets have a need (the feeder-wide view below "
                "still applies)."
            )
        return
    doc.h(2, "Procure or build: the constrained assets")
    cfg = result.config
    conf = cfg.horizon.confidence
    if table.empty:
        doc.p("No monitored asset needs an upgrade within the horizon: nothing to procure.")
        return
    v2g = table[table.upgrade_year > table.need_year_p50]
    counts = table.tier.value_counts()
    tiers = "; ".join(f"{t}: {int(n)}" for t, n in counts.items())
    answer = (
        f"{len(table)} asset(s) need an upgrade within the horizon. Targeted V2G is the "
        f"least-present-cost plan at {len(v2g)} of them; at the others the least-cost plan "
        f"is to build at the year of need. Tiers: {tiers}."
    )
    if len(v2g):
        answer += (
            f" V2G plans: net benefit {fmt_usd(v2g.net_benefit_usd.sum())} in total "
            f"({cfg.valuation.dollar_year} USD, present worth)."
        )
    finite = table.break_even_incentive_usd[np.isfinite(table.break_even_incentive_usd)]
    if len(finite):
        answer += (
            f" Break-even upfront incentive per enrolled EV: median "
            f"{fmt_usd(finite.median())}, highest {fmt_usd(finite.max())} "
            f"(the program pays {fmt_usd(program_costs(cfg)[0].upfront_incentive_usd_per_customer)}"
            f"; {program_costs(cfg)[1]})."
        )
    doc.p(answer)
    rows = [_opportunity_row(r) for r in table.head(MAX_OPPORTUNITY_ROWS).itertuples()]
    doc.table(
        [
            "Asset", "Need year P50 (P90)", "Need kW / kWh / h", "EVs behind (V2G-capable)",
            "Enroll (need year)", "Least-cost plan", "Best V2G plan: years",
            "deferral value", "program cost", "net benefit", "Break-even incentive/EV",
            "Certainty", "Tier",
        ],
        rows,
        align="lllrrlrrrrrrl",
    )  # fmt: skip
    if len(table) > MAX_OPPORTUNITY_ROWS:
        doc.p(f"{len(table) - MAX_OPPORTUNITY_ROWS} more in deferral_opportunities.csv.")
    doc.p(
        "Method: for each asset with a need (charging case, P50 year of need) and each year "
        "from then on, the V2G-capable EVs downstream sign up in a fixed random order per "
        "draw; the least number enrolled that keeps the asset within its criterion, under "
        f"the study's V2G strategy ({strategy}) with the availability effects, is found by "
        f"bisection in each draw, and the year's enrollment is the one that holds in {conf:.0%} "
        "of the draws. Each year's enrollments are then dispatched again over the whole "
        "fleet and the power flow solved (certainty: the share of draws in which the asset "
        "holds, lowest over the plan's years). Plans: V2G until year X, then the upgrade, "
        "for every X while V2G holds; the program cost is the ratepayer's (incentives when "
        "customers enroll, payments each year); the best V2G plan's figures are shown even where "
        "building wins. Tier rule: not deferrable when no enrollment "
        f"holds in {conf:.0%} of the draws in the need year; not cost-effective when no V2G "
        f"plan has a positive net benefit; cost-effective and certain when certainty is at "
        f"least {conf:.0%}, else uncertain. The feeder-wide program (every enrolled EV, "
        "wherever it sits) is the second view, in the valuation section."
    )


def headline_figures(result: StudyResult) -> list[tuple[str, str]]:
    """The headline figures of a study's one-screen summary: (label, value) pairs, each
    read from the study's summary (:class:`~gridplan.study.summary.StudySummary`, the
    content of ``summary.json``) or its deferral-opportunity table, formatted as in the
    report's tables (no number is recomputed).

    Parameters
    ----------
    result
        A study result.

    Returns
    -------
    list of (str, str)
        Critical asset; its peak loading [%] per EV case; year of need without and with
        V2G (P50); the deferral at the study's confidence [yr]; assets with a need; the
        deferral value of all assets [USD] and the ratepayer net benefit [USD] per V2G
        case; and, with the procure-or-build table, where targeted V2G is the least-cost
        plan.
    """
    s = result.summary
    crit = s.critical_asset
    year = result.config.year
    conf = result.config.horizon.confidence
    items = [("Critical asset", f"{crit.name} ({crit.asset_id})")]
    for case in ("charging", "v2g"):
        if case in crit.peak_loading_pct:
            items.append((f"Peak loading {year}, {case}", fmt_pct(crit.peak_loading_pct[case])))
    items += [
        ("Year of need without V2G, P50", fmt_year(crit.year_of_need_charging)),
        ("Year of need with V2G, P50", fmt_year(crit.year_of_need_v2g)),
        (
            f"Deferral reached in {conf:.0%} of draws",
            ("≥ " if crit.deferral_capped else "") + fmt_num(crit.deferral_years, 0) + " yr",
        ),
        (
            "Assets with a need in the horizon",
            f"{s.assets_with_need_in_horizon} of {s.assets_monitored}",
        ),
    ]
    for case, value in s.deferral_value_usd_total.items():
        items.append((f"Deferral value, all assets ({case})", fmt_usd(value)))
    for case, econ in s.economics.items():
        if econ.program is not None:
            items.append(
                (f"Ratepayer net benefit ({case})", fmt_usd(econ.ratepayer_net_benefit_pv_usd))
            )
    table = result.opportunities
    if table is not None and not table.empty:
        v2g = int((table.upgrade_year > table.need_year_p50).sum())
        items.append(("Targeted V2G is the least-cost plan at", f"{v2g} of {len(table)} assets"))
    return items


def _summary_map(out: Path, figures: Sequence[str]) -> tuple[str, str] | None:
    """The map of the one-screen summary: the interactive map beside the report, else the
    static feeder map figure, else none."""
    if (out / MAP_FILE).is_file():
        return ("iframe", MAP_FILE)
    static = [f for f in figures if f.rpartition(".")[0] == "feeder_map"]
    return ("image", static[0]) if static else None


def study_document(result: StudyResult, figures: Sequence[str] = ()) -> Document:
    """The report of one study as a :class:`Document`.

    Parameters
    ----------
    result
        A study result.
    figures
        Figure file names (in the report folder) to include.
    """
    cfg = result.config
    doc = Document(f"V2G deferral study '{cfg.name}': feeder {result.feeder.name}, {cfg.year}")
    doc.headline = headline_figures(result)
    _procure_or_build_section(doc, result)
    doc.p(_intro_text(result))
    _summary_section(doc, result)
    _feeder_section(doc, result.feeder)
    _assumptions_section(doc, result)
    _assets_section(doc, result)
    _critical_need_section(doc, result)
    _valuation_section(doc, result)
    _firmness_section(doc, result)
    _sensitivity_section(doc, result)
    _power_flow_section(doc, result)
    _fleet_check_table(doc, result)
    _figures_section(doc, figures, CAPTIONS)
    return doc


def write_report(
    result: StudyResult,
    out_dir: str | Path,
    figures: list[str],
    *,
    templates_dir: str | Path | None = None,
) -> list[str]:
    """Write ``report.md`` and a self-contained ``report.html`` of a study (atomically).

    Parameters
    ----------
    result
        A study result (:func:`gridplan.study.run`).
    out_dir
        The study's output folder; the figures must already be in it.
    figures
        Figure file names in ``out_dir`` (e.g. from :func:`gridplan.outputs.figures.write_figures`);
        the report shows one file per figure (PNG preferred, else SVG).
    templates_dir
        A folder of report templates overriding the bundled ones
        (:func:`template_environment`; default: the ``GRIDPLAN_REPORT_TEMPLATES``
        environment variable's folder, else the bundled templates only).

    Returns
    -------
    list of str
        ``["report.md", "report.html"]``.

    Notes
    -----
    ``report.html`` opens with a one-screen summary: :func:`headline_figures` and the map,
    ``feeder_map.html`` in an iframe when that file is in ``out_dir`` (written before by
    :func:`gridplan.outputs.webmap.write_feeder_map`), else the static ``feeder_map``
    figure.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = _pick_figures(figures, [])
    doc = study_document(result, chosen)
    doc.map = _summary_map(out, chosen)
    return _write(doc, out, chosen, templates_dir)


# --------------------------------------------------------------------------- batch report
def _column(table: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` present in ``table`` (numeric where it can be), else NaNs."""
    for name in names:
        if name in table.columns:
            series = table[name]
            numeric = pd.to_numeric(series, errors="coerce")
            if numeric.notna().sum() >= series.notna().sum():
                return numeric.astype(float)
            return series
    return pd.Series(np.nan, index=table.index, dtype=float)


def _stat(series: pd.Series, how: str) -> float:
    """``min``/``max``/``mean``/``median`` of the finite values (NaN when there are none)."""
    values = pd.to_numeric(series, errors="coerce").astype(float).dropna()
    return float(getattr(values, how)()) if len(values) else math.nan


def _outcome(need_year: float, deferral: float, net: float) -> str:
    if _missing(need_year):
        return "no need in horizon"
    if _missing(deferral) or deferral <= 0:
        return "need; V2G does not defer"
    if _missing(net):
        return "V2G defers (value not assessed)"
    return "V2G defers, net benefit > 0" if net > 0 else "V2G defers, costs exceed value"


#: Columns of a batch results table that are identity or result columns, not scenario fields.
_KNOWN = {
    "unit_id",
    "feeder",
    "scenario",
    "scenario_name",
    "draw",
    "seed",
    "status",
    "error",
    "duration_s",
    "attempts",
    "worker",
    "config_hash",
    "net_value_basis",
}


def _net_value_basis(ok: pd.DataFrame) -> str:
    """What the net value of the finished units is: their ``net_value_basis`` values, else the
    first net or gross value column present."""
    if "net_value_basis" in ok.columns:
        return ", ".join(sorted(set(ok.net_value_basis.dropna().astype(str))))
    return next(
        (
            c
            for c in ("net_deferral_value_usd", "net_benefit_usd", "deferral_value_usd")
            if c in ok.columns
        ),
        "—",
    )


def _best_scenario(ok: pd.DataFrame, net_value: pd.Series, mask: np.ndarray) -> tuple[str, float]:
    """The scenario point with the highest mean net value among ``mask`` (``"—"``, NaN when
    there is none)."""
    if mask.sum() and "scenario_name" in ok.columns:
        by = net_value[mask].groupby(ok.scenario_name[mask].astype(str)).mean().dropna()
        if len(by):
            return str(by.idxmax()), float(by.max())
    return "—", np.nan


def _feeder_rows(
    t: pd.DataFrame, ok: pd.DataFrame, feeders: list[str], net_value: pd.Series
) -> list[dict[str, Any]]:
    """Per feeder: units, critical asset, peak loadings, need, deferral, values, outcome;
    ranked by mean net value (highest first, feeders without one last)."""
    peak_c = _column(ok, "peak_loading_pct_charging")
    peak_v = _column(ok, "peak_loading_pct_v2g")
    need = _column(ok, "year_of_need_charging")
    deferral = _column(ok, "deferral_years")
    gross = _column(ok, "deferral_value_usd")
    critical = _column(ok, "critical_asset", "critical_asset_id")
    per: list[dict[str, Any]] = []
    for feeder in feeders:
        mask = (ok.feeder.astype(str) == feeder).to_numpy()
        crit_mode = critical[mask].dropna().astype(str).mode()
        best, net_best = _best_scenario(ok, net_value, mask)
        row: dict[str, Any] = {
            "feeder": feeder,
            "units": f"{int(mask.sum())} / {int((t.feeder.astype(str) == feeder).sum())}",
            "critical": crit_mode.iloc[0] if len(crit_mode) else "—",
            "peak_c": _stat(peak_c[mask], "max"),
            "peak_v": _stat(peak_v[mask], "max"),
            "need_min": _stat(need[mask], "min"),
            "need_med": _stat(need[mask], "median"),
            "deferral": _stat(deferral[mask], "median"),
            "gross": _stat(gross[mask], "mean"),
            "net": _stat(net_value[mask], "mean"),
            "net_best": net_best,
            "best": best,
        }
        row["outcome"] = _outcome(row["need_med"], row["deferral"], row["net"])
        per.append(row)
    per.sort(key=lambda r: (-r["net"] if not _missing(r["net"]) else math.inf, r["feeder"]))
    return per


#: Columns of the feeder ranking of a batch report.
_RANKING_HEADERS = (
    "Rank",
    "Feeder",
    "Units ok / all",
    "Critical asset (most often)",
    "Peak w/o V2G, max [%]",
    "Peak with V2G, max [%]",
    "Need w/o V2G, earliest (median)",
    "Deferral, median [yr]",
    "Gross value, mean",
    "Net value, mean",
    "Best scenario (net)",
    "Screening outcome",
)


def _ranking_row(rank: int, r: dict[str, Any]) -> list[str]:
    need_median = "—" if _missing(r["need_med"]) else format(r["need_med"], "g")
    return [
        str(rank),
        r["feeder"],
        r["units"],
        r["critical"],
        fmt_num(r["peak_c"], 1),
        fmt_num(r["peak_v"], 1),
        f"{fmt_year(r['need_min'], '—')} ({need_median})",
        fmt_num(r["deferral"], 1),
        fmt_usd(r["gross"]),
        fmt_usd(r["net"]),
        f"{r['best']} ({fmt_usd(r['net_best'])})" if r["best"] != "—" else "—",
        r["outcome"],
    ]


def _ranking_section(
    doc: Document, t: pd.DataFrame, ok: pd.DataFrame, feeders: list[str], net_value: pd.Series
) -> None:
    doc.h(2, "Feeders ranked by net deferral value")
    doc.p(
        "Mean over each feeder's finished units; net value basis: "
        f"{_net_value_basis(ok) or '—'} (the ratepayer net benefit when the study has program "
        "costs, else the gross deferral value). Peak loading is the critical asset's, year of "
        "need the P50 year without V2G, deferral the years reached at the study's confidence."
    )
    per = _feeder_rows(t, ok, feeders, net_value)
    doc.table(
        _RANKING_HEADERS,
        [_ranking_row(i + 1, r) for i, r in enumerate(per)],
        "llllrrrrrrll",
    )
    outcomes = pd.Series([r["outcome"] for r in per]).value_counts()
    doc.ul(f"{outcome}: {count} feeder(s)" for outcome, count in outcomes.items())


def _scenario_section(
    doc: Document, ok: pd.DataFrame, feeders: list[str], net_value: pd.Series
) -> None:
    if not ("scenario_name" in ok.columns and 1 < ok.scenario_name.nunique() <= 16):
        return
    doc.h(2, "Net value by scenario point")
    doc.p("Mean net deferral value over draws, per feeder and scenario point.")
    pivot = net_value.groupby([ok.feeder.astype(str), ok.scenario_name.astype(str)]).mean()
    table_s = pivot.unstack()
    columns = list(dict.fromkeys(ok.scenario_name.astype(str)))
    doc.table(
        ["Feeder", *columns],
        [
            [f, *(fmt_usd(table_s.at[f, c]) if c in table_s.columns else "—" for c in columns)]
            for f in feeders
            if f in table_s.index
        ],
    )


def _failed_section(doc: Document, failed: pd.DataFrame) -> None:
    if not len(failed):
        return
    doc.h(2, "Failed units")
    doc.p(
        f"{len(failed)} unit(s) failed; the batch kept going. Errors as recorded (first "
        f"{min(len(failed), MAX_FAILED_ROWS)}; all in manifest.csv)."
    )
    errors = _column(failed, "error")
    ids = _column(failed, "unit_id")
    doc.table(
        ["Unit", "Feeder", "Error"],
        [
            [str(ids.iloc[i]), str(failed.feeder.iloc[i]), str(errors.iloc[i])]
            for i in range(min(len(failed), MAX_FAILED_ROWS))
        ],
        "lll",
    )


def batch_document(
    table: pd.DataFrame, name: str = "batch", figures: Sequence[str] = ()
) -> Document:
    """The screening report of a batch results table (one row per unit) as a Document.

    Columns are read defensively: ``feeder`` is required; ``status`` (default ``ok``),
    ``unit_id``, ``scenario_name``, ``critical_asset``, ``peak_loading_pct_charging`` /
    ``_v2g``, ``year_of_need_charging``, ``deferral_years``, ``deferral_value_usd``,
    ``net_deferral_value_usd`` (else ``net_benefit_usd``, else the deferral value) and
    ``error`` are used when present. Columns with a dot (``fleet.evs_per_household``) are
    taken as scenario fields.
    """
    if "feeder" not in table.columns:
        raise ValueError("the batch table has no 'feeder' column")
    t = table.reset_index(drop=True)
    status = t["status"].astype(str) if "status" in t.columns else pd.Series("ok", index=t.index)
    ok = t[(status == "ok").to_numpy()]
    n_ok = int((status == "ok").sum())
    failed = t[(status == "failed").to_numpy()]
    feeders = list(dict.fromkeys(t.feeder.astype(str)))
    params = [c for c in t.columns if "." in str(c) and c not in _KNOWN]
    scenarios = _column(t, "scenario_name", "scenario").dropna().astype(str)
    draws = _column(t, "draw").dropna()

    doc = Document(f"Screening report: batch '{name}'")
    doc.p(
        f"{len(t)} units: {len(feeders)} feeder(s) × {max(1, scenarios.nunique())} scenario "
        f"point(s) × {max(1, draws.nunique())} draw(s); {n_ok} finished, "
        f"{len(failed)} failed, {len(t) - n_ok - len(failed)} other. Generated "
        f"{date.today().isoformat()} by gridplan {__version__}. Each unit is one feeder study "
        "(one scenario point, one fleet draw); values are present worth."
    )
    if params:
        values = "; ".join(
            f"{p} = {', '.join(str(v) for v in pd.unique(t[p].dropna()))}" for p in params
        )
        doc.p(f"Scenario fields: {values}.")
    net_value = _column(ok, "net_deferral_value_usd", "net_benefit_usd", "deferral_value_usd")
    _ranking_section(doc, t, ok, feeders, net_value)
    _scenario_section(doc, ok, feeders, net_value)
    _failed_section(doc, failed)
    _figures_section(doc, figures, BATCH_CAPTIONS)
    return doc


def write_batch_report(
    table: pd.DataFrame, out_dir: str | Path, *, templates_dir: str | Path | None = None
) -> list[str]:
    """Write the screening report of a batch: figures, ``report.md`` and ``report.html``.

    Parameters
    ----------
    table
        The consolidated results table, one row per unit (:func:`gridplan.batch.run`'s
        ``results`` or ``results.csv``); see :func:`batch_document` for the columns read.
    out_dir
        The batch's output folder (its name is taken as the batch name).
    templates_dir
        A folder of report templates overriding the bundled ones (as in
        :func:`write_report`).

    Returns
    -------
    list of str
        The files written: the screening figure (PNG, SVG) when a unit finished, then
        ``report.md`` and ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = write_batch_figures(table, out)
    chosen = _pick_figures(figures, [])
    doc = batch_document(table, out.resolve().name, chosen)
    return [*figures, *_write(doc, out, chosen, templates_dir)]

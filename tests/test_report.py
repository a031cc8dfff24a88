"""Study and batch reports: the files, the key numbers of summary.json, sources, figures."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from gridplan.outputs import figures as plotting
from gridplan.outputs import report, write_study
from gridplan.outputs.report import fmt_pct, fmt_usd, fmt_year
from gridplan.study import StudyConfig, run

STUDY = {
    "name": "rep",
    "feeder": "ca-residential",
    "year": 2030,
    "base_year": 2026,
    "seed": 11,
    "period": {"kind": "range", "start": "2017-09-03", "end": "2017-09-04"},
    "horizon": {"start": 2028, "end": 2032, "draws": 2, "confidence": 0.5},
    "fleet": {"evs_per_household": 0.5, "v2g_capable_share": 0.6, "v2g_enrolled_share": 0.5},
    "valuation": {"discount_rate": 0.07},
    "program": {
        "charging_energy_price_usd_per_kwh": 0.31,
        "charging_energy_price_source": "PG&E EV2-A off-peak <test>",
    },
    "sensitivity": {
        "enabled": True,
        "load_growth": [1.0, 1.0],
        "ev_adoption": [1.0, 1.0],
        "enrollment": [1.0, 1.0],
    },
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study written to disk (summary.json), its figures and its report."""
    out = tmp_path_factory.mktemp("out")
    result = run(StudyConfig(**STUDY))
    folder = out / STUDY["name"]
    write_study(result, folder)
    figures = plotting.write_figures(result, folder)
    files = report.write_report(result, folder, figures)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    md = (folder / "report.md").read_text(encoding="utf-8")
    page = (folder / "report.html").read_text(encoding="utf-8")
    return result, folder, figures, files, summary, md, page


def test_report_files(study):
    _, folder, _, files, _, md, page = study
    assert files == ["report.md", "report.html"]
    assert md.startswith("# V2G deferral study 'rep'")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def _key_numbers(summary: dict) -> list[str]:
    crit = summary["critical_asset"]
    econ = summary["economics"]["v2g"]
    return [
        summary["feeder"],
        crit["asset_id"],
        crit["name"],
        fmt_pct(crit["peak_loading_pct_base"]),
        fmt_pct(crit["peak_loading_pct_charging"]),
        fmt_pct(crit["peak_loading_pct_v2g"]),
        fmt_year(crit["year_of_need_charging"]),
        fmt_year(crit["year_of_need_v2g"]),
        fmt_usd(crit["upgrade_cost_usd"]),
        fmt_usd(summary["deferral_value_usd_total"]["v2g"]),
        fmt_usd(econ["deferral_value_usd"]),
        fmt_usd(econ["ratepayer_cost_pv_usd"]),
        fmt_usd(econ["ratepayer_net_benefit_pv_usd"]),
        f"{summary['fleet']['evs']} / {summary['fleet']['v2g_enrolled_evs']}",
        f"{summary['assets_monitored']} / {summary['assets_with_need_in_horizon']}",
        "7.00 %",  # the study's discount rate
        summary["valuation"]["method"],
    ]


def test_report_contains_the_key_numbers_of_summary_json(study):
    _, _, _, _, summary, md, page = study
    for text in _key_numbers(summary):
        assert text in md, text
        assert html.escape(text) in page, text


def test_report_follows_the_data(study, tmp_path):
    result = study[0]
    s = result.summary
    crit = dataclasses.replace(
        s.critical_asset,
        peak_loading_pct={**s.critical_asset.peak_loading_pct, "charging": 987.654},
    )
    summary = dataclasses.replace(
        s,
        critical_asset=crit,
        deferral_value_usd_total={**s.deferral_value_usd_total, "v2g": 123456.0},
    )
    changed = dataclasses.replace(result, summary=summary)
    report.write_report(changed, tmp_path, [])
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "987.7 %" in md and "$123,456" in md


def test_report_names_the_sources(study):
    result, _, _, _, _, md, page = study
    assert "PG&E EV2-A off-peak <test>" in md
    assert "PG&amp;E EV2-A off-peak &lt;test&gt;" in page  # escaped, not markup
    assert "<test>" not in page
    assert "Cost escalation | 2.10 % | National Grid / Niagara Mohawk" in md  # default source
    assert "| Discount rate (nominal) | 7.00 % | study file |" in md
    for source in result.feeder.upgrades.source.unique():
        assert source in md
    assert "ANSI C84.1" in md and "ELRP" in md


def test_report_lists_the_assets_with_a_need(study):
    result, _, _, _, _, md, _ = study
    table = md.split("## Results per asset")[1].split("###")[0]
    need = result.assets[result.assets.year_of_need_charging_p50.notna()]
    for asset_id in need.index[: report.MAX_ASSET_ROWS]:
        assert f"({asset_id})" in table


def test_report_embeds_every_figure(study):
    _, folder, figures, _, _, md, page = study
    pngs = [f for f in figures if f.endswith(".png")]
    sources = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(sources) == len(pngs)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in sources}
    assert embedded == {(folder / f).read_bytes() for f in pngs}
    for name in pngs:
        assert f"]({name})" in md
    # self-contained: nothing fetched from elsewhere
    assert "http://" not in page and "https://" not in page and "<link" not in page


def test_report_sections(study):
    md = study[5]
    for heading in (
        "## Summary",
        "## Feeder",
        "## Assumptions and sources",
        "## Results per asset",
        "## Valuation",
        "## Firmness of the V2G relief",
        "## Sensitivity",
        "## Power flow and fleet checks",
        "## Figures",
    ):
        assert heading in md


def test_report_without_program_or_sensitivity(study, tmp_path):
    result = study[0]
    config = result.config.model_copy(update={"program": None})
    economics = result.economics[["strategy", "deferral_value_usd", "annual_deferral_value_usd"]]
    bare = dataclasses.replace(result, config=config, economics=economics, sensitivity=None)
    report.write_report(bare, tmp_path, [])
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "not given: gross deferral value only" in md
    assert "## Sensitivity" not in md and "## Figures" not in md


def test_missing_figure_is_an_error(study, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        report.write_report(study[0], tmp_path, ["nope.png"])


def test_svg_only_figures_are_embedded_as_svg(study, tmp_path):
    result, folder = study[0], study[1]
    (tmp_path / "peak_day.svg").write_bytes((folder / "peak_day.svg").read_bytes())
    report.write_report(result, tmp_path, ["peak_day.svg"])
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/svg+xml;base64,') == 1


# --------------------------------------------------------------------------- batch
def _batch_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(7)],
            "feeder": ["north", "north", "south", "south", "east", "east", "west"],
            "scenario_name": ["lo", "hi", "lo", "hi", "lo", "hi", "lo"],
            "draw": [0] * 7,
            "status": ["ok", "ok", "ok", "ok", "ok", "ok", "failed"],
            "error": [None] * 6 + ["ConfigError: feeder | broken"],
            "fleet.v2g_enrolled_share": [0.25, 0.75] * 3 + [0.25],
            "critical_asset": ["T1", "T1", "L7", "L7", "T9", "T9", None],
            "peak_loading_pct_charging": [130.0, 140.0, 90.0, 95.0, 150.0, 160.0, np.nan],
            "peak_loading_pct_v2g": [100.0, 95.0, 90.0, 95.0, 140.0, 150.0, np.nan],
            "year_of_need_charging": pd.array([2029, 2028, None, None, 2027, 2027, None], "Int64"),
            "deferral_years": [2.0, 3.0, np.nan, np.nan, 0.0, 0.0, np.nan],
            "deferral_value_usd": [5000.0, 8000.0, 0.0, 0.0, -100.0, -300.0, np.nan],
            "net_deferral_value_usd": [4000.0, 6000.0, 0.0, 0.0, -2000.0, -2500.0, np.nan],
            "net_value_basis": ["net_benefit_usd"] * 6 + [None],
        }
    )


def test_batch_report(tmp_path):
    out = tmp_path / "screen"
    files = report.write_batch_report(_batch_table(), out)
    assert files == ["screen_value.png", "screen_value.svg", "report.md", "report.html"]
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert md.startswith("# Screening report: batch 'screen'")
    assert "7 units: 4 feeder(s) × 2 scenario point(s) × 1 draw(s); 6 finished, 1 failed" in md
    ranking = md.split("## Feeders ranked")[1].split("##")[0]
    rows = [line for line in ranking.splitlines() if line.startswith("| ") and "Rank" not in line]
    assert [row.split(" | ")[1] for row in rows] == ["north", "south", "east", "west"]
    assert "| 1 | north | 2 / 2 | T1 | 140.0 | 100.0 | 2028 (2028.5) | 2.5 |" in md
    assert "$6,500" in md and "$5,000" in md  # gross and net means of north
    assert "V2G defers, net benefit > 0" in md
    assert "no need in horizon" in md and "need; V2G does not defer" in md
    assert "fleet.v2g_enrolled_share = 0.25, 0.75" in md
    assert "ConfigError: feeder \\| broken" in md  # escaped in the Markdown table
    assert "ConfigError: feeder | broken" in page
    assert page.count('src="data:image/png;base64,') == 1


def test_batch_report_reads_columns_defensively(tmp_path):
    minimal = pd.DataFrame({"feeder": ["a", "b"], "deferral_value_usd": [1.0, 2.0]})
    files = report.write_batch_report(minimal, tmp_path)
    assert "report.md" in files
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| 1 | b |" in md and "| 2 | a |" in md
    nothing = pd.DataFrame({"feeder": ["a"], "status": ["failed"], "error": ["boom"]})
    files = report.write_batch_report(nothing, tmp_path / "failed")
    assert files == ["report.md", "report.html"]  # no figure without a finished unit
    with pytest.raises(ValueError, match="feeder"):
        report.write_batch_report(pd.DataFrame({"x": [1]}), tmp_path / "bad")

"""Reports rendered from jinja2 templates (issue 22): bundled as package data, HTML
autoescaped, a utility's templates folder overrides single files, and report.html opens
with a one-screen summary (the summary's headline figures and the map)."""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import shutil

import pytest
from viz_study import viz_study

from gridplan.core.errors import ConfigError
from gridplan.outputs import figures as plotting
from gridplan.outputs import report
from gridplan.outputs.report import Document, fmt_pct, fmt_usd, fmt_year
from gridplan.study import StudyConfig, run

STUDY = viz_study("tpl")


def _doc() -> Document:
    doc = Document("A <b>title</b> & more")
    doc.h(2, "Section")
    doc.p("Text with <script>alert(1)</script> & a | pipe")
    doc.ul(["one", "two <i>"])
    doc.table(["Name", "Value"], [["a|b", "1"], ["c", "<2>"]], "lr")
    return doc


# --------------------------------------------------------------------------- templates
def test_templates_are_package_data():
    folder = importlib.resources.files("gridplan.outputs").joinpath("templates")
    for name in ("report.html.j2", "report.md.j2", "report.css", "at_a_glance.html.j2"):
        assert folder.joinpath(name).is_file(), name


def test_markdown_from_the_template(tmp_path):
    md = _doc().markdown()
    assert md == (
        "# A <b>title</b> & more\n\n"
        "## Section\n\n"
        "Text with <script>alert(1)</script> & a | pipe\n\n"
        "- one\n- two <i>\n\n"
        "| Name | Value |\n|:---|---:|\n| a\\|b | 1 |\n| c | <2> |\n"
    )


def test_html_is_autoescaped(tmp_path):
    page = _doc().html(tmp_path)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>A &lt;b&gt;title&lt;/b&gt; &amp; more</title>" in page
    assert '<td style="text-align:right">&lt;2&gt;</td>' in page
    assert "<li>two &lt;i&gt;</li>" in page
    assert 'class="at-a-glance"' not in page  # no headline, no map: no summary box


def test_a_templates_folder_overrides_single_files(tmp_path, monkeypatch):
    folder = tmp_path / "brand"
    folder.mkdir()
    (folder / "header.html.j2").write_text(
        '<div class="brand">Utility {{ "<X>" }} planning</div>\n', encoding="utf-8"
    )
    (folder / "report.css").write_text("body{color:#123456}\n", encoding="utf-8")
    page = _doc().html(tmp_path, templates_dir=folder)
    assert '<div class="brand">Utility &lt;X&gt; planning</div>' in page
    assert "body{color:#123456}" in page and "max-width:72em" not in page
    assert "&lt;script&gt;" in page  # the bundled body template, still escaping
    # the environment variable does the same for the CLI; an argument takes precedence
    monkeypatch.setenv(report.TEMPLATES_ENV, str(folder))
    assert "Utility &lt;X&gt; planning" in _doc().html(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    assert "Utility" not in _doc().html(tmp_path, templates_dir=other)
    monkeypatch.setenv(report.TEMPLATES_ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="GRIDPLAN_REPORT_TEMPLATES"):
        _doc().html(tmp_path)
    with pytest.raises(ConfigError, match="is not a folder"):
        _doc().markdown(templates_dir=tmp_path / "nope")


# --------------------------------------------------------------------------- study
@pytest.fixture(scope="module")
def result():
    return run(StudyConfig(**STUDY))


def _body(page: str) -> str:
    return page.split("<body>", 1)[1]


def test_report_html_opens_with_the_one_screen_summary(result, tmp_path):
    (tmp_path / "feeder_map.html").write_text("<!DOCTYPE html><p>map</p>", encoding="utf-8")
    report.write_report(result, tmp_path, [])
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    body = _body(page)
    glance = body.index('<section class="at-a-glance"')
    assert body.index("<h1>") < glance < body.index("<h2>Procure or build")
    assert '<iframe src="feeder_map.html"' in body
    # the headline figures are the summary's numbers, as the summary table shows them
    s = result.summary.to_dict()
    crit = s["critical_asset"]
    section = body[glance : body.index("</section>")]
    for label, value in (
        ("Critical asset", f"{crit['name']} ({crit['asset_id']})"),
        ("Peak loading 2030, charging", fmt_pct(crit["peak_loading_pct_charging"])),
        ("Year of need without V2G, P50", fmt_year(crit["year_of_need_charging"])),
        ("Year of need with V2G, P50", fmt_year(crit["year_of_need_v2g"])),
        ("Deferral value, all assets (v2g)", fmt_usd(s["deferral_value_usd_total"]["v2g"])),
        (
            "Ratepayer net benefit (v2g)",
            fmt_usd(s["economics"]["v2g"]["ratepayer_net_benefit_pv_usd"]),
        ),
    ):
        assert f"<dt>{label}</dt><dd>{value}</dd>" in section, label
    table = result.opportunities
    wins = int((table.upgrade_year > table.need_year_p50).sum())
    assert f"<dd>{wins} of {len(table)} assets</dd>" in section
    # the same numbers in the detail's summary table
    assert f'<td style="text-align:left">{fmt_usd(s["deferral_value_usd_total"]["v2g"])}' in body


def test_report_html_shows_the_static_map_without_the_interactive_one(result, tmp_path):
    plotting.save_figure(plotting.plot_feeder_map(result), tmp_path, "feeder_map")
    report.write_report(result, tmp_path, ["feeder_map.png", "feeder_map.svg"])
    body = _body((tmp_path / "report.html").read_text(encoding="utf-8"))
    section = body[body.index('<section class="at-a-glance"') : body.index("</section>")]
    assert "<iframe" not in section
    assert re.search(r'<img alt="Feeder map[^"]*" src="data:image/png;base64,', section)
    assert "pip install &#39;gridplan[maps]&#39;" in section


def test_study_report_markdown_is_unchanged_by_the_summary_box(result, tmp_path):
    """The Markdown report has no summary box: it opens with the procure-or-build answer."""
    report.write_report(result, tmp_path, [])
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    first = md.split("\n## ", 2)[1]
    assert first.startswith("Procure or build")


def test_utility_templates_render_a_study_report(result, tmp_path):
    folder = tmp_path / "brand"
    bundled = importlib.resources.files("gridplan.outputs") / "templates"
    shutil.copytree(str(bundled), folder)
    (folder / "footer.html.j2").write_text("<footer>{{ generator }}</footer>\n", "utf-8")
    bare = dataclasses.replace(result, sensitivity=None)
    report.write_report(bare, tmp_path / "out", [], templates_dir=folder)
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert re.search(r"<footer>gridplan [^<]+</footer>\s*</body>", page)

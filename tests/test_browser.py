"""report.html and feeder_map.html in a real browser (issue 22): headless Chromium (the OS
package, driven by playwright) loads the files of a written study, and they show no console
error, the headline numbers are visible, and the map draws its assets with their tooltips.

The network is closed here. The map page loads Leaflet and d3 from their CDNs, as every
folium map does: the test serves those two files from Debian's ``libjs-leaflet`` and
``libjs-d3`` packages (with Leaflet's layer-control icon; installed by ``.ci/run`` with
Chromium) and aborts every other
request to an external host (the OpenStreetMap tiles); the console errors those aborted
requests cause ("Failed to load resource" at an external URL) are filtered out and printed.
Any other console error or page error fails the test.

Screenshots go to ``outputs/browser/`` (git-ignored) and their paths are printed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from viz_study import viz_study

from gridplan.outputs import webmap, write_study
from gridplan.outputs.report import headline_figures
from gridplan.study import StudyConfig, run

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Local copies of the map's scripts and icons (Debian packages), by the file name a page
#: asks for.
LOCAL_SCRIPTS = {
    "leaflet.js": Path("/usr/share/javascript/leaflet/leaflet.js"),
    "leaflet.css": Path("/usr/share/javascript/leaflet/leaflet.css"),
    "d3.min.js": Path("/usr/share/javascript/d3/d3.min.js"),
    "layers.png": Path("/usr/share/javascript/leaflet/images/layers.png"),
    "layers-2x.png": Path("/usr/share/javascript/leaflet/images/layers-2x.png"),
}
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[1] / "outputs" / "browser"

STUDY = viz_study("browser")


def _requirements() -> str | None:
    """Why the test cannot run here, or ``None``."""
    if not Path(CHROMIUM).is_file():
        return "Chromium not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed (the test extra)"
    missing = [str(p) for p in LOCAL_SCRIPTS.values() if not p.is_file()]
    if missing:
        return (
            "no local Leaflet/d3 to serve on this closed network (apt-get install "
            f"libjs-leaflet libjs-d3): {', '.join(missing)}"
        )
    if webmap.map_available() is not None:
        return f"no interactive map: {webmap.map_available()}"
    return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    result = run(StudyConfig(**STUDY))
    out = tmp_path_factory.mktemp("browser") / "browser"
    files = write_study(result, out)  # default tiles: their requests are aborted below
    assert "feeder_map.html" in files and "report.html" in files
    return result, out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class _Page:
    """A page with its console errors collected and external requests answered locally
    (Leaflet, d3) or aborted (everything else)."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1300, "height": 950})
        self.errors: list[str] = []
        self.ignored: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.route("**/*", self._route)

    @staticmethod
    def _route(route):
        url = urlparse(route.request.url)
        if url.scheme in ("file", "data", "about"):
            return route.continue_()
        local = LOCAL_SCRIPTS.get(url.path.rsplit("/", 1)[-1])
        if local is not None:
            return route.fulfill(path=str(local))
        return route.abort()

    def _console(self, message) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        external = urlparse(url).scheme in ("http", "https")
        if external and message.text.startswith("Failed to load resource"):
            self.ignored.append(f"{message.text} ({urlparse(url).netloc})")
        else:
            self.errors.append(f"{message.text} at {url}")

    def open(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def screenshot(self, name: str) -> Path:
        self.page.wait_for_timeout(1000)  # let Leaflet's zoom animation to the bounds end
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path


def test_report_html_in_chromium(folder, browser):
    result, out = folder
    page = _Page(browser)
    page.open(out / "report.html")
    map_frame = page.page.frame_locator("iframe")
    map_frame.locator("path.leaflet-interactive").first.wait_for(state="attached", timeout=20_000)
    text = page.page.inner_text("#at-a-glance")
    for label, value in headline_figures(result):
        assert label in text and value in text, (label, value)
    assert page.page.locator("h2").first.inner_text().startswith("Procure or build")
    shot = page.screenshot("report.png")
    assert shot.stat().st_size > 10_000
    print("ignored (closed network):", sorted(set(page.ignored)))
    assert page.errors == []


def test_feeder_map_html_in_chromium(folder, browser):
    result, out = folder
    page = _Page(browser)
    page.open(out / "feeder_map.html")
    shapes = page.page.locator("path.leaflet-interactive")
    shapes.first.wait_for(state="attached", timeout=20_000)
    # every line, every drawn asset and every opportunity ring
    assert shapes.count() >= len(result.feeder.net.line) + len(result.assets)
    legend = page.page.inner_text("body")
    assert "Peak loading without V2G, 2030 [% of rating]" in legend
    assert "Locational value of a deferral [$/kW-yr]" in legend
    # hover an opportunity: its tooltip gives the locational value and break-even incentive
    # (a mouseover event: a ring has no fill to hit with the pointer)
    page.page.locator("path.leaflet-interactive").last.dispatch_event("mouseover")
    tooltip = page.page.locator(".leaflet-tooltip")
    tooltip.first.wait_for(timeout=10_000)
    tip = tooltip.first.inner_text()
    assert "Locational value [$/kW-yr]" in tip and "Break-even incentive per enrolled EV" in tip
    page.screenshot("feeder_map.png")
    print("ignored (closed network):", sorted(set(page.ignored)))
    assert page.errors == []

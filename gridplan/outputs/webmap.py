"""The interactive feeder map of a study: ``feeder_map.html`` (Leaflet, via folium).

:func:`feeder_map` draws, with :meth:`geopandas.GeoDataFrame.explore`:

- the network's lines (grey);
- the monitored assets coloured by their peak loading without V2G in the detail year
  [% of rating] (lines as their route, transformers as points), the tooltip of each giving
  its loading without and with V2G, year of need (P50) without and with V2G, deferral
  years and value, and -- for an asset with a need -- the procure-or-build answer of
  ``deferral_opportunities.csv``: the locational value [USD/kW-yr], the break-even upfront
  incentive per enrolled EV [USD], the enrollment needed and the tier;
- the deferral opportunities coloured by their locational value [USD/kW-yr] (issue 20:
  "a map of the locational value");
- the buses coloured by their lowest voltage over the period without V2G [pu] (hidden at
  first; the layer control shows it).

Coordinates: a feeder with geodata is drawn on web tiles (``tiles``; OpenStreetMap by
default, which the browser loads from the internet when the map is opened). A feeder with
the schematic coordinates of its model (OpenDSS ``BusCoords``, no CRS) or without any
coordinates (the schematic layout of :func:`gridplan.outputs.figures.schematic_layout`) is
drawn on a plain Leaflet ``Simple`` CRS without tiles, titled "schematic": no geography is
invented.

The map needs the optional ``maps`` extra (``pip install 'gridplan[maps]'``: folium and
mapclassify, which ``explore`` imports); :func:`write_feeder_map` writes nothing and logs
why when they are missing. The page loads Leaflet (and d3, for the colour legends) from
their public CDNs, as every folium map does; the jQuery, Bootstrap and Font Awesome files
that folium adds by default are dropped (the map uses none of them).
"""

from __future__ import annotations

import html
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gridplan.core.io import write_text
from gridplan.outputs.figures import asset_points, map_geometry

if TYPE_CHECKING:
    from gridplan.study.result import StudyResult

__all__ = ["MAPS_EXTRA", "MAP_FILE", "feeder_map", "map_available", "write_feeder_map"]

log = logging.getLogger(__name__)

#: File name of the interactive map.
MAP_FILE = "feeder_map.html"
#: What to install for the map.
MAPS_EXTRA = "pip install 'gridplan[maps]'"
#: Web tiles of a geographic feeder's map (an xyzservices / folium name).
DEFAULT_TILES = "OpenStreetMap"
#: Colour map of loading [%] (low is blue; voltage uses its reverse: low is red).
_CMAP = "RdYlBu_r"
#: folium's default scripts and styles that the map keeps (the others are not used).
_KEEP_JS = {"leaflet"}
_KEEP_CSS = {"leaflet_css"}


def map_available() -> str | None:
    """``None`` when the map can be drawn, else why not (a missing package)."""
    missing = []
    for module in ("folium", "mapclassify"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        return f"{' and '.join(missing)} not installed ({MAPS_EXTRA})"
    return None


# --------------------------------------------------------------------------- text
def _num(value: Any, digits: int = 1, unit: str = "") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v:,.{digits}f}{' ' + unit if unit else ''}"


def _usd(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    if math.isinf(v) and v > 0:
        return "any (V2G wins at any incentive)"
    if not math.isfinite(v):
        return "—"
    return f"-${abs(v):,.0f}" if v < 0 else f"${v:,.0f}"


def _year(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "none in horizon"
    return str(int(v)) if math.isfinite(v) else "none in horizon"


# --------------------------------------------------------------------------- frames
def _crs(result: StudyResult) -> Any:
    return None if result.feeder.bus_geo is None else result.feeder.bus_geo.crs


def _asset_frame(result: StudyResult) -> Any:
    """Monitored assets with their tooltip texts and numbers, geometry from
    :func:`map_geometry` (schematic where the feeder has no CRS)."""
    import geopandas as gpd

    a = result.assets
    year = result.config.year
    opp = result.opportunities
    opp = opp.set_index("asset_id") if opp is not None else pd.DataFrame()
    _, lines, _, _ = map_geometry(result.feeder)
    points = asset_points(result.feeder, a)
    v2g = "v2g" if "v2g" in result.horizon.cases else None
    rows = []
    for asset_id, r in a.iterrows():
        o = opp.loc[asset_id] if asset_id in opp.index else None
        shape = lines.geometry.get(int(r.element)) if r.kind == "line" else points.get(asset_id)
        rows.append(
            {
                "asset": f"{r['name']} ({asset_id})",
                "kind": str(r.kind),
                "rating": _num(r.rating_kva, 0, "kVA"),
                "loading_charging": _num(r.peak_loading_pct_charging, 1, "%"),
                "loading_v2g": _num(r.get(f"peak_loading_pct_{v2g}"), 1, "%") if v2g else "—",
                "limit": _num(r.limit_pct, 0, "%"),
                "need_year": _year(r.year_of_need_charging_p50),
                "need_year_v2g": _year(r.get(f"year_of_need_{v2g}_p50")) if v2g else "—",
                "deferral": _num(r.get(f"deferral_years_{v2g}"), 0, "yr") if v2g else "—",
                "deferral_value": _usd(r.get(f"deferral_value_usd_{v2g}")) if v2g else "—",
                "usd_per_kw_yr": "—" if o is None else _num(o.value_usd_per_kw_yr, 2),
                "break_even": "—" if o is None else _usd(o.break_even_incentive_usd),
                "enrolled": "—" if o is None else _num(o.enrolled_needed, 0),
                "plan": "—" if o is None else str(o.plan),
                "tier": "—" if o is None else str(o.tier),
                "peak_loading_pct": float(r.peak_loading_pct_charging),
                "geometry": shape,
            }
        )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=lines.crs)
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    frame.attrs["year"] = year
    return frame


_ASSET_TOOLTIP = {
    "asset": "Asset",
    "kind": "Kind",
    "rating": "Rating",
    "limit": "Planning limit",
    "loading_charging": "Peak loading without V2G",
    "loading_v2g": "Peak loading with V2G",
    "need_year": "Year of need without V2G (P50)",
    "need_year_v2g": "Year of need with V2G (P50)",
    "deferral": "Deferral by the feeder-wide V2G program (at the study's confidence)",
    "deferral_value": "Deferral value, feeder-wide program (present worth)",
    "usd_per_kw_yr": "Locational value [$/kW-yr]",
    "break_even": "Break-even incentive per enrolled EV",
    "enrolled": "Targeted enrollment (EVs)",
    "plan": "Targeted V2G: least-cost plan",
    "tier": "Targeted V2G: tier",
}


def _bus_frame(result: StudyResult, buses: Any) -> Any:
    """Buses with their lowest voltage without V2G [pu] (``None``: no bus voltages)."""
    vm = (result.bus_min_vm_pu or {}).get("charging")
    if vm is None:
        return None
    frame = buses.copy()
    values = pd.Series(np.asarray(vm, dtype=float), index=result.feeder.net.bus.index)
    frame["vm_min_pu"] = values.reindex(frame.index).to_numpy()
    frame = frame[np.isfinite(frame.vm_min_pu.to_numpy(dtype=float))]
    frame["bus"] = [f"{n} ({i})" for i, n in zip(frame.index, frame.name, strict=True)]
    frame["voltage"] = [_num(v, 4, "pu") for v in frame.vm_min_pu]
    return frame[["bus", "voltage", "vm_min_pu", "geometry"]].reset_index(drop=True)


def _opportunity_frame(assets: Any, result: StudyResult) -> Any:
    """Assets with a deferral opportunity and a finite $/kW-yr, as points."""
    opp = result.opportunities
    if opp is None or opp.empty:
        return None
    value = opp.set_index("asset_id").value_usd_per_kw_yr.astype(float)
    ids = [str(a).rsplit("(", 1)[-1].rstrip(")") for a in assets.asset]
    frame = assets.assign(value_usd_per_kw_yr=pd.Series(ids).map(value).to_numpy())
    frame = frame[np.isfinite(frame.value_usd_per_kw_yr.to_numpy(dtype=float))]
    if frame.empty:
        return None
    return frame.set_geometry(frame.geometry.representative_point()).reset_index(drop=True)


# --------------------------------------------------------------------------- map
def feeder_map(result: StudyResult, *, tiles: str | None = DEFAULT_TILES) -> Any:
    """The interactive map of a study (module docstring: layers, tooltips, coordinates).

    Parameters
    ----------
    result
        A study result (:func:`gridplan.study.run`).
    tiles
        Web tiles under a geographic feeder (a folium / xyzservices name), ``None`` for
        none (an offline page). Ignored for schematic coordinates (no tiles).

    Returns
    -------
    folium.Map

    Raises
    ------
    ImportError
        folium or mapclassify is missing (``pip install 'gridplan[maps]'``).
    """
    import folium

    buses, lines, _, schematic = map_geometry(result.feeder)
    crs = lines.crs
    assets = _asset_frame(result)
    year = result.config.year
    drawn = lines[lines.geometry.notna()]
    # a feeder without lines (transformers only) starts the map from its buses
    first = drawn if len(drawn) else buses[buses.geometry.notna()]
    m = first.explore(
        color="#777777",
        tiles=tiles if crs is not None else None,
        name="Lines" if len(drawn) else "Buses",
        tooltip=["name"],
        style_kwds={"weight": 2},
        marker_type="circle_marker",
        marker_kwds={"radius": 2},
        zoom_control="bottomright",  # the legends take the top
        control_scale=crs is not None,  # schematic units are not metres
    )
    if crs is None:
        # a Simple CRS in the model's units may need to zoom far out to fit the feeder
        # (folium gives min_zoom to tile layers only, and there are none)
        m.options["min_zoom"] = -12
        m.options["zoom_snap"] = 0.25
    m.default_js = [(k, v) for k, v in m.default_js if k in _KEEP_JS]
    m.default_css = [(k, v) for k, v in m.default_css if k in _KEEP_CSS]
    bus_frame = _bus_frame(result, buses[buses.geometry.notna()])
    if bus_frame is not None and len(bus_frame):
        bus_frame.explore(
            m=m, column="vm_min_pu", cmap="RdYlBu", name="Bus minimum voltage (no V2G)",
            tooltip=["bus", "voltage"], tooltip_kwds={"aliases": ["Bus", "Lowest voltage"]},
            marker_type="circle_marker", marker_kwds={"radius": 3}, show=False,
            legend=False,
        )  # fmt: skip
    if len(assets):
        limit = float(np.nanmedian(result.assets.limit_pct)) if len(result.assets) else 100.0
        peak = float(np.nanmax(assets.peak_loading_pct, initial=limit))
        assets.explore(
            m=m, column="peak_loading_pct", cmap=_CMAP, vmin=0.0, vmax=max(peak, limit * 1.05),
            name=f"Assets: peak loading without V2G, {year}",
            tooltip=list(_ASSET_TOOLTIP), tooltip_kwds={"aliases": list(_ASSET_TOOLTIP.values())},
            marker_type="circle_marker", marker_kwds={"radius": 7},
            style_kwds={"weight": 5, "fillOpacity": 0.9},
            legend_kwds={"caption": f"Peak loading without V2G, {year} [% of rating]"},
        )  # fmt: skip
    opportunities = _opportunity_frame(assets, result)
    if opportunities is not None:
        opportunities.explore(
            m=m, column="value_usd_per_kw_yr", cmap="viridis",
            name="Locational value [$/kW-yr]",
            tooltip=list(_ASSET_TOOLTIP), tooltip_kwds={"aliases": list(_ASSET_TOOLTIP.values())},
            marker_type="circle_marker", marker_kwds={"radius": 11},
            style_kwds={"fill": False, "weight": 3},
            legend_kwds={"caption": "Locational value of a deferral [$/kW-yr]"},
        )  # fmt: skip
    folium.LayerControl(position="bottomright", collapsed=True).add_to(m)
    x0, y0, x1, y1 = first.total_bounds
    if np.isfinite([x0, y0, x1, y1]).all():
        m.fit_bounds([[y0, x0], [y1, x1]], padding=(24, 24))  # markers at the edges show
    _add_title(m, result, schematic, tiles)
    return m


def _add_title(m: Any, result: StudyResult, schematic: bool, tiles: str | None) -> None:
    """A fixed title box: study, feeder, year, and what the coordinates are."""
    import folium

    if not schematic:
        where = "map tiles © their providers" if tiles else "geographic coordinates, no tiles"
    elif result.feeder.bus_xy is not None:
        where = "schematic: the feeder model's own coordinates (no CRS), not geography"
    else:
        where = "schematic layout from the topology (the feeder has no coordinates)"
    text = html.escape(
        f"{result.config.name}: feeder {result.feeder.name}, {result.config.year} ({where})"
    )
    box = (
        '<div id="gridplan-map-title" style="position:fixed;bottom:44px;left:10px;z-index:1000;'
        "background:rgba(255,255,255,.9);padding:4px 8px;font:12px sans-serif;"
        f'border:1px solid #999">{text}</div>'
    )
    m.get_root().html.add_child(folium.Element(box))


def write_feeder_map(
    result: StudyResult, out_dir: str | Path, *, tiles: str | None = DEFAULT_TILES
) -> list[str]:
    """Write ``feeder_map.html`` (atomically) when folium and mapclassify are installed.

    Parameters
    ----------
    result
        A study result.
    out_dir
        Folder to write into (created if missing).
    tiles
        Web tiles of a geographic feeder (:func:`feeder_map`).

    Returns
    -------
    list of str
        ``["feeder_map.html"]``, or ``[]`` when the map's packages are missing (logged at
        INFO with the command that installs them).
    """
    missing = map_available()
    if missing is not None:
        log.info("feeder_map.html not written: %s", missing)
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        page = feeder_map(result, tiles=tiles).get_root().render()
    except ImportError as exc:  # e.g. matplotlib.pyplot, which explore imports, is blocked
        log.info("feeder_map.html not written: %s", exc)
        return []
    write_text(out / MAP_FILE, page)
    return [MAP_FILE]

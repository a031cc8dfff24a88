"""Study results as GIS layers: a GeoPackage of separate layers and a GeoJSON file.

``assets.gpkg`` holds one layer per kind of feature, each of one geometry type:

``transformers`` (points)
    Every transformer of the network, at the point midway between its HV and LV buses:
    ``element`` (the ``net.trafo`` index), ``kind``, ``name``, ``monitored``, and for a monitored
    transformer the columns of the study's asset table (``assets.csv``: loading per case
    [%], year of need P50/P90, need, V2G resource, firmness, deferral years, upgrade and
    deferral value [USD]), ``over_limit_<case>`` and ``critical``; null where the
    transformer is not monitored.
``lines`` (line strings)
    Every line of the network, its route from the feeder's geodata (else the straight
    segment between its buses), with the same columns.
``buses`` (points)
    Every bus: ``bus`` (the ``net.bus`` index), ``name``, ``vn_kv`` [kV], ``evs`` (EVs at
    the bus in the detail year's fleet) and, per case with bus voltages,
    ``vm_min_pu_<case>``: the bus's lowest voltage over the study period in the detail
    year's representative draw [pu] (``StudyResult.bus_min_vm_pu``; null where never
    solved) and ``under_voltage_<case>`` (below the criteria's ``vm_min_pu``).
``deferral_opportunities`` (points)
    One row per asset with a need (``result.opportunities``, the rows of
    ``deferral_opportunities.csv``: need year, $/kW-yr ``value_usd_per_kw_yr``, break-even
    incentive per enrolled EV ``break_even_incentive_usd`` [USD], tier, plan, ...) at the
    asset's point (a line's midpoint). An infinite break-even incentive (V2G wins at any
    incentive) is null with ``break_even_any_incentive`` true. Written when the study
    computed the table.

Every layer has ``study``, ``feeder``, ``planning_year`` and ``geometry_source`` (where
the geometry comes from). ``assets.geojson`` keeps the earlier combined layer: one feature
per monitored asset (:func:`asset_layer`; line strings and points mixed, as GeoJSON
allows) -- GeoJSON has no layers.

Coordinates: a feeder with geodata is written in its CRS (EPSG:4326). A feeder whose model
gives schematic coordinates (an OpenDSS circuit's ``BusCoords``, no CRS) gets them in the
GeoPackage with no CRS (layer metadata ``crs`` says so) and empty geometries in the GeoJSON,
whose coordinates every reader takes as WGS 84 degrees (RFC 7946). A feeder without any
coordinates gets empty geometries (``geometry_source = "none: feeder has no
coordinates"``): a schematic layout has no place in a GIS, so none is invented.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gridplan.core.io import write_with
from gridplan.outputs.figures import asset_points, map_geometry

if TYPE_CHECKING:
    from gridplan.study.result import StudyResult

__all__ = [
    "FILES",
    "LAYER",
    "LAYERS",
    "asset_layer",
    "bus_layer",
    "element_layer",
    "export_assets",
    "gpkg_layers",
    "opportunity_layer",
]

#: Layer name of the combined per-asset layer (the GeoJSON file's content).
LAYER = "assets"
#: Layers of the GeoPackage, in the order written (``deferral_opportunities`` only when the
#: study computed the table).
LAYERS = ("transformers", "lines", "buses", "deferral_opportunities")
#: File names written by :func:`export_assets`.
FILES = ("assets.gpkg", "assets.geojson")

_NO_COORDINATES = "none: feeder has no coordinates"


def _has_coordinates(result: StudyResult) -> bool:
    return result.feeder.bus_geo is not None or result.feeder.bus_xy is not None


def _crs(result: StudyResult) -> Any:
    geo = result.feeder.bus_geo
    return None if geo is None else geo.crs


def _schematic(source: str, result: StudyResult) -> str:
    """``source`` marked as schematic when the feeder's coordinates have no CRS."""
    if result.feeder.bus_geo is None:
        return f"schematic model coordinates, no CRS: {source}"
    return source


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Non-finite floats as NaN (written as nulls), missing objects as ``None``."""
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            values = frame[column].to_numpy(dtype=float)
            frame[column] = np.where(np.isfinite(values), values, np.nan)
        elif frame[column].dtype == object:
            frame[column] = frame[column].where(frame[column].notna(), None)
    return frame


def _identity(frame: pd.DataFrame, result: StudyResult, at: int) -> pd.DataFrame:
    """Insert ``study``, ``feeder`` and ``planning_year`` at column position ``at``."""
    frame.insert(at, "study", result.config.name)
    frame.insert(at + 1, "feeder", result.feeder.name)
    frame.insert(at + 2, "planning_year", int(result.config.year))
    return frame


def _asset_frame(result: StudyResult) -> pd.DataFrame:
    """The asset table with ``asset_id``, identity, ``over_limit_<case>`` and ``critical``."""
    table = result.assets.copy()
    table.index.name = "asset_id"
    frame = _identity(_clean(table.reset_index()), result, 1)
    for case in result.horizon.cases:
        peak = f"peak_loading_pct_{case}"
        if peak in frame.columns:
            frame[f"over_limit_{case}"] = (frame[peak] > frame.limit_pct).to_numpy(dtype=bool)
    frame["critical"] = frame.asset_id == result.summary.critical_asset.asset_id
    return frame


def asset_layer(result: StudyResult) -> Any:
    """The per-asset results of a study as a GeoDataFrame (one row per monitored asset).

    Lines as their route, transformers as points: the combined layer of ``assets.geojson``.

    Parameters
    ----------
    result
        A study result (:func:`gridplan.study.run`).

    Returns
    -------
    geopandas.GeoDataFrame
        Rows in ``result.assets`` order; columns of the asset table plus ``asset_id``,
        ``study``, ``feeder``, ``planning_year``, ``over_limit_<case>``, ``critical`` and
        ``geometry_source``; CRS EPSG:4326 (``None`` for a feeder without a CRS).
        Non-finite numbers (e.g. an infinite number of EVs required) are written as nulls.
    """
    import geopandas as gpd
    import shapely

    feeder = result.feeder
    frame = _asset_frame(result)
    if not _has_coordinates(result):
        geometry: list[Any] = [None] * len(frame)
        sources = [_NO_COORDINATES] * len(frame)
    else:
        _, lines, _, _ = map_geometry(feeder)
        points = asset_points(feeder, result.assets)
        geometry, sources = [], []
        for asset_id, kind, element in zip(frame.asset_id, frame.kind, frame.element, strict=True):
            if kind == "line":
                shape = lines.geometry.get(int(element))
                given = feeder.line_geo is not None and int(element) in feeder.line_geo.index
                source = "line route (feeder geodata)" if given else "segment between line buses"
            else:
                shape = points.get(asset_id)
                source = "point midway between transformer HV and LV buses"
            if shape is None or shapely.is_empty(shape):
                shape, source = None, "none: buses without coordinates"
            geometry.append(shape)
            sources.append(_schematic(source, result) if shape is not None else source)
    frame["geometry_source"] = sources
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=_crs(result))


def element_layer(result: StudyResult, kind: str) -> Any:
    """Every transformer (``kind="trafo"``) or line (``"line"``) of the network with the
    study's results where it is a monitored asset.

    Parameters
    ----------
    result
        A study result.
    kind
        ``"trafo"`` (points midway between the HV and LV buses) or ``"line"`` (routes).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per ``net.trafo`` / ``net.line`` element, in index order: ``element``,
        ``kind``, ``name``, ``monitored``, identity columns, the asset table's columns (null where
        not monitored), ``over_limit_<case>``, ``critical``, ``geometry_source``.
    """
    import geopandas as gpd
    import shapely

    feeder = result.feeder
    table = feeder.net.trafo if kind == "trafo" else feeder.net.line
    base = pd.DataFrame(
        {"element": table.index.astype(int), "kind": kind, "name": table.name.to_numpy()}
    )
    assets = _asset_frame(result)
    assets = assets[assets.kind == kind].drop(columns=["kind", "name"])
    assets["element"] = assets.element.astype(int)
    frame = base.merge(assets, on="element", how="left", validate="one_to_one")
    frame.insert(3, "monitored", frame.asset_id.notna().to_numpy())
    for column in [c for c in frame.columns if c.startswith("over_limit_") or c == "critical"]:
        frame[column] = frame[column].astype("boolean").fillna(False).astype(bool)
    frame = _clean(frame)
    for column in ("study", "feeder", "planning_year"):
        frame = frame.drop(columns=column)
    frame = _identity(frame, result, 4)
    if not _has_coordinates(result):
        geometry: list[Any] = [None] * len(frame)
        sources = [_NO_COORDINATES] * len(frame)
    else:
        _, lines, trafos, _ = map_geometry(feeder)
        shapes = (trafos if kind == "trafo" else lines).geometry.reindex(table.index)
        if kind == "trafo":
            geometry = [
                None if s is None else shapely.line_interpolate_point(s, 0.5, normalized=True)
                for s in shapes
            ]
            source = "point midway between transformer HV and LV buses"
            sources = [source] * len(frame)
        else:
            geometry = list(shapes)
            given = set() if feeder.line_geo is None else set(feeder.line_geo.index)
            sources = [
                "line route (feeder geodata)" if i in given else "segment between line buses"
                for i in table.index
            ]
        sources = [
            "none: buses without coordinates"
            if g is None or shapely.is_empty(g)
            else _schematic(s, result)
            for g, s in zip(geometry, sources, strict=True)
        ]
        geometry = [None if g is None or shapely.is_empty(g) else g for g in geometry]
    frame["geometry_source"] = sources
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=_crs(result))


def bus_layer(result: StudyResult) -> Any:
    """Every bus with its lowest voltage over the study period per case.

    Parameters
    ----------
    result
        A study result; ``result.bus_min_vm_pu`` gives, per case of the detail year's
        representative draw, each bus's lowest voltage [pu] (a case without bus voltages
        has no column).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per bus (``net.bus`` order): ``bus``, ``name``, ``vn_kv`` [kV], identity
        columns, ``evs`` (EVs at the bus in the detail year's fleet), ``vm_min_pu_<case>``
        [pu] and ``under_voltage_<case>`` (below ``criteria.vm_min_pu``), and
        ``geometry_source``.
    """
    import geopandas as gpd

    net = result.feeder.net
    frame = pd.DataFrame(
        {
            "bus": net.bus.index.astype(int),
            "name": net.bus.name.to_numpy(),
            "vn_kv": net.bus.vn_kv.to_numpy(dtype=float),
        }
    )
    frame = _identity(frame, result, 3)
    evs = pd.Series(np.asarray(result.fleet.bus)).value_counts()
    frame["evs"] = evs.reindex(net.bus.index, fill_value=0).to_numpy(dtype=int)
    limit = result.config.criteria.vm_min_pu
    for case, values in (result.bus_min_vm_pu or {}).items():
        if values is None:
            continue
        vm = np.asarray(values, dtype=float)
        frame[f"vm_min_pu_{case}"] = np.where(np.isfinite(vm), vm, np.nan)
        frame[f"under_voltage_{case}"] = np.isfinite(vm) & (vm < limit)
    if not _has_coordinates(result):
        geometry: list[Any] = [None] * len(frame)
        sources = [_NO_COORDINATES] * len(frame)
    else:
        buses, _, _, _ = map_geometry(result.feeder)
        given = buses.geometry.reindex(net.bus.index)
        geometry = [None if g is None or g.is_empty else g for g in given]
        source = "feeder geodata" if result.feeder.bus_geo is not None else "bus coordinates"
        sources = [
            "none: bus without coordinates" if g is None else _schematic(source, result)
            for g in geometry
        ]
    frame["geometry_source"] = sources
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=_crs(result))


def opportunity_layer(result: StudyResult) -> Any | None:
    """The deferral opportunities (procure or build per asset with a need) at each asset's
    point: the locational value ``value_usd_per_kw_yr`` [USD/kW-yr] and the break-even
    incentive per enrolled EV ``break_even_incentive_usd`` [USD].

    Parameters
    ----------
    result
        A study result.

    Returns
    -------
    geopandas.GeoDataFrame or None
        ``None`` when the study did not compute the table (``result.opportunities``);
        else its rows and columns, plus identity columns, ``break_even_any_incentive``
        (the break-even incentive is infinite: written as null) and ``geometry_source``.
    """
    import geopandas as gpd
    import shapely

    table = result.opportunities
    if table is None:
        return None
    frame = table.reset_index(drop=True).copy()
    frame["break_even_any_incentive"] = np.isposinf(
        frame.break_even_incentive_usd.to_numpy(dtype=float)
    )
    frame = _identity(_clean(frame), result, 1)
    if not _has_coordinates(result):
        geometry: list[Any] = [None] * len(frame)
        sources = [_NO_COORDINATES] * len(frame)
    else:
        points = asset_points(result.feeder, result.assets)
        geometry = [points.get(a) for a in frame.asset_id]
        geometry = [None if g is None or shapely.is_empty(g) else g for g in geometry]
        source = "asset point (transformer: midway between its buses; line: its midpoint)"
        sources = [
            "none: buses without coordinates" if g is None else _schematic(source, result)
            for g in geometry
        ]
    frame["geometry_source"] = sources
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=_crs(result))


def gpkg_layers(result: StudyResult) -> dict[str, Any]:
    """The GeoPackage's layers by name (:data:`LAYERS`; ``deferral_opportunities`` only
    when the study computed the table)."""
    layers = {
        "transformers": element_layer(result, "trafo"),
        "lines": element_layer(result, "line"),
        "buses": bus_layer(result),
    }
    opportunities = opportunity_layer(result)
    if opportunities is not None:
        layers["deferral_opportunities"] = opportunities
    return layers


_DESCRIPTIONS = {
    "transformers": "every transformer; results of the monitored ones (detail year, medians "
    "over draws; years of need over the horizon)",
    "lines": "every line; results of the monitored ones (detail year, medians over draws; "
    "years of need over the horizon)",
    "buses": "every bus; lowest voltage over the study period per case [pu], detail year's "
    "representative draw",
    "deferral_opportunities": "procure or build per asset with a need: $/kW-yr, break-even "
    "incentive per enrolled EV, tier, need year (deferral_opportunities.csv)",
}


def export_assets(result: StudyResult, out_dir: str | Path) -> list[str]:
    """Write ``assets.gpkg`` (layers :data:`LAYERS`) and ``assets.geojson`` (per asset).

    Each file is written to a temporary file beside it and renamed (atomic).

    Parameters
    ----------
    result
        A study result.
    out_dir
        Folder to write into (created if missing).

    Returns
    -------
    list of str
        The file names written (:data:`FILES`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers = gpkg_layers(result)
    combined = asset_layer(result)
    metadata = {
        "study": result.config.name,
        "feeder": result.feeder.name,
        "planning_year": str(result.config.year),
        "dollar_year": str(result.config.valuation.dollar_year),
        "cases": "; ".join(
            f"{case}={strategy or 'no EVs'}" for case, strategy in result.horizon.strategies.items()
        ),
        "source": "gridplan study",
    }
    if _crs(result) is None:
        metadata["crs"] = (
            "none: schematic coordinates of the feeder model"
            if _has_coordinates(result)
            else "none: the feeder has no coordinates"
        )

    def gpkg(tmp: Path) -> None:
        for name, layer in layers.items():
            meta = {**metadata, "description": _DESCRIPTIONS[name]}
            _to_file(layer, tmp, driver="GPKG", layer=name, layer_metadata=meta)

    def geojson(tmp: Path) -> None:
        # GeoJSON means WGS 84 (RFC 7946): schematic coordinates would be read as degrees
        shown = (
            combined if combined.crs is not None else combined.set_geometry([None] * len(combined))
        )
        _to_file(shown, tmp, driver="GeoJSON")

    write_with(out / FILES[0], gpkg)
    write_with(out / FILES[1], geojson)
    return list(FILES)


def _to_file(frame: Any, path: Path, **kwargs: Any) -> None:
    with warnings.catch_warnings():
        # The temporary file's '.tmp' suffix is not the driver's extension; the final
        # name is.
        warnings.filterwarnings("ignore", message=".*extension.*", category=RuntimeWarning)
        # A feeder without coordinates has no CRS, on purpose.
        warnings.filterwarnings("ignore", message=".*'crs' was not provided.*")
        frame.to_file(path, engine="pyogrio", **kwargs)

"""Per-asset study results as GIS layers: GeoPackage and GeoJSON.

:func:`export_assets` writes one feature per monitored asset with the columns of the
study's asset table (``assets.csv``: loading per case, year of need P50/P90, need,
V2G resource, firmness, deferral years, upgrade and deferral value) plus

- ``asset_id``, ``study``, ``feeder``, ``planning_year``;
- ``over_limit_<case>``: peak loading above the planning limit in that case;
- ``critical``: the study's critical asset;
- ``geometry_source``: where the geometry comes from.

Geometry: a line is its route from the feeder's geodata (or the straight segment between
its buses); a transformer is a point midway between its HV and LV buses. The layer mixes
line strings and points (GeoPackage geometry type ``GEOMETRY``), in EPSG:4326. A feeder
without coordinates gets empty geometries and ``geometry_source = "none: feeder has no
coordinates"`` -- a schematic layout has no place on a map, so none is invented. A feeder
whose model gives schematic coordinates (an OpenDSS circuit's ``BusCoords``, no CRS) gets
them in the GeoPackage with no CRS (layer metadata ``crs`` says so) and empty geometries in
the GeoJSON, whose coordinates every reader takes as WGS 84 degrees (RFC 7946).
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

__all__ = ["LAYER", "FILES", "asset_layer", "export_assets"]

#: Layer name inside the GeoPackage.
LAYER = "assets"
#: File names written by :func:`export_assets`.
FILES = ("assets.gpkg", "assets.geojson")


def asset_layer(result: StudyResult) -> Any:
    """The per-asset results of a study as a GeoDataFrame (one row per monitored asset).

    Parameters
    ----------
    result
        A study result (:func:`gridplan.study.run`).

    Returns
    -------
    geopandas.GeoDataFrame
        Rows in ``result.assets`` order; columns as described in the module docstring;
        CRS EPSG:4326 (``None`` for a feeder without coordinates). Non-finite numbers
        (e.g. an infinite number of EVs required) are written as nulls.
    """
    import geopandas as gpd
    import shapely

    feeder = result.feeder
    table = result.assets.copy()
    table.index.name = "asset_id"
    frame = table.reset_index()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            values = frame[column].to_numpy(dtype=float)
            frame[column] = np.where(np.isfinite(values), values, np.nan)
        elif frame[column].dtype == object:
            frame[column] = frame[column].where(frame[column].notna(), None)
    frame.insert(1, "study", result.config.name)
    frame.insert(2, "feeder", feeder.name)
    frame.insert(3, "planning_year", int(result.config.year))
    for case in result.horizon.cases:
        peak = f"peak_loading_pct_{case}"
        if peak in frame.columns:
            frame[f"over_limit_{case}"] = (frame[peak] > frame.limit_pct).to_numpy(dtype=bool)
    frame["critical"] = frame.asset_id == result.summary.critical_asset.asset_id

    if feeder.bus_geo is None and feeder.bus_xy is None:
        geometry: list[Any] = [None] * len(frame)
        sources = ["none: feeder has no coordinates"] * len(frame)
        crs = None
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
            elif feeder.bus_geo is None:
                source = f"schematic model coordinates, no CRS: {source}"
            geometry.append(shape)
            sources.append(source)
        crs = None if feeder.bus_geo is None else feeder.bus_geo.crs
    frame["geometry_source"] = sources
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=crs)


def export_assets(result: StudyResult, out_dir: str | Path) -> list[str]:
    """Write the per-asset results as ``assets.gpkg`` (layer ``assets``) and ``assets.geojson``.

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
    layer = asset_layer(result)
    metadata = {
        "study": result.config.name,
        "feeder": result.feeder.name,
        "planning_year": str(result.config.year),
        "dollar_year": str(result.config.valuation.dollar_year),
        "cases": "; ".join(
            f"{case}={strategy or 'no EVs'}" for case, strategy in result.horizon.strategies.items()
        ),
        "source": "gridplan study (per-asset results, detail year medians over draws)",
    }

    def gpkg(tmp: Path) -> None:
        _to_file(layer, tmp, driver="GPKG", layer=LAYER, layer_metadata=metadata)

    if layer.crs is None:
        metadata["crs"] = "none: schematic coordinates of the feeder model"

    def geojson(tmp: Path) -> None:
        # GeoJSON means WGS 84 (RFC 7946): schematic coordinates would be read as degrees
        _to_file(layer if layer.crs is not None else layer.set_geometry([None] * len(layer)),
                 tmp, driver="GeoJSON")  # fmt: skip

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

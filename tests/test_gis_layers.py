"""GIS layers and the interactive map of a study (issue 22; issue 20's locational value):
the GeoPackage's transformers, lines, buses and deferral_opportunities layers reopen with
the study's numbers, one geometry type each; schematic coordinates stay without a CRS;
feeder_map.html carries the tooltips and draws no tiles for a schematic feeder."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pytest
from viz_study import viz_study

from gridplan.outputs import gis, webmap
from gridplan.study import StudyConfig, run

gpd = pytest.importorskip("geopandas")
pyogrio = pytest.importorskip("pyogrio")

#: A short study with a need at several transformers (the figures' study of test_plotting).
STUDY = viz_study("gis")


@pytest.fixture(scope="module")
def result():
    return run(StudyConfig(**STUDY))


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    out = tmp_path_factory.mktemp("gis")
    gis.export_assets(result, out)
    return out / "assets.gpkg"


def _schematic(result):
    """The study's feeder with its coordinates as schematic model coordinates (no CRS), as
    an OpenDSS circuit's BusCoords give them."""
    geo = result.feeder.bus_geo
    xy = pd.DataFrame(
        {"x": geo.geometry.x.to_numpy() * 1e4, "y": geo.geometry.y.to_numpy() * 1e4},
        index=geo.index,
    )
    feeder = dataclasses.replace(result.feeder, bus_geo=None, line_geo=None, bus_xy=xy)
    return dataclasses.replace(result, feeder=feeder)


# --------------------------------------------------------------------------- layers
def test_layers_have_one_geometry_type_each(result, written):
    assert result.opportunities is not None and len(result.opportunities)
    layers = {str(name): str(kind) for name, kind in pyogrio.list_layers(written)}
    assert layers == {
        "transformers": "Point",
        "lines": "LineString",
        "buses": "Point",
        "deferral_opportunities": "Point",
    }
    for name in layers:
        info = pyogrio.read_info(written, layer=name)
        assert info["crs"] == "EPSG:4326"
        assert info["layer_metadata"]["study"] == "gis"


def test_element_layers_hold_every_element_and_the_asset_results(result, written):
    net = result.feeder.net
    assets = result.assets
    for name, kind, table in (("transformers", "trafo", net.trafo), ("lines", "line", net.line)):
        layer = gpd.read_file(written, layer=name)
        assert list(layer.element) == list(table.index)
        assert list(layer.name) == list(table.name)
        mine = assets[assets.kind == kind]
        monitored = layer[layer.monitored].set_index("asset_id").loc[mine.index]
        assert layer.monitored.sum() == len(mine)
        np.testing.assert_allclose(
            monitored.peak_loading_pct_charging, mine.peak_loading_pct_charging, rtol=1e-12
        )
        np.testing.assert_array_equal(
            monitored.year_of_need_charging_p50.to_numpy(dtype=float),
            mine.year_of_need_charging_p50.to_numpy(dtype=float),
        )
        rest = layer[~layer.monitored]
        assert rest.asset_id.isna().all() and rest.peak_loading_pct_charging.isna().all()
        assert not rest.critical.any() and not rest.over_limit_charging.any()
        assert layer.geometry.notna().all()


def test_bus_layer_has_each_bus_minimum_voltage_per_case(result, written):
    layer = gpd.read_file(written, layer="buses")
    net = result.feeder.net
    assert list(layer.bus) == list(net.bus.index)
    cases = [c for c, v in result.bus_min_vm_pu.items() if v is not None]
    assert cases and "charging" in cases
    limit = result.config.criteria.vm_min_pu
    for case in cases:
        expected = np.asarray(result.bus_min_vm_pu[case], dtype=float)
        np.testing.assert_allclose(layer[f"vm_min_pu_{case}"], expected, rtol=1e-12)
        np.testing.assert_array_equal(layer[f"under_voltage_{case}"], expected < limit)
    assert layer.evs.sum() == result.fleet.n_ev
    assert set(layer.geometry_source) == {"feeder geodata"}


def test_opportunity_layer_has_the_locational_value(result, written):
    table = result.opportunities
    layer = gpd.read_file(written, layer="deferral_opportunities")
    assert list(layer.asset_id) == list(table.asset_id)
    np.testing.assert_allclose(
        layer.value_usd_per_kw_yr, table.value_usd_per_kw_yr, rtol=1e-12, equal_nan=True
    )
    break_even = table.break_even_incentive_usd.to_numpy(dtype=float)
    np.testing.assert_array_equal(layer.break_even_any_incentive, np.isposinf(break_even))
    finite = np.isfinite(break_even)
    np.testing.assert_allclose(layer.break_even_incentive_usd[finite], break_even[finite])
    assert layer.break_even_incentive_usd[~finite].isna().all()
    assert list(layer.tier) == list(table.tier)
    assert list(layer.need_year_p50) == list(table.need_year_p50)
    # each opportunity sits at its asset's point in the transformers layer
    trafos = gpd.read_file(written, layer="transformers").set_index("asset_id")
    for asset_id, point in zip(layer.asset_id, layer.geometry, strict=True):
        if asset_id in trafos.index:
            assert point.equals_exact(trafos.geometry[asset_id], 1e-12)


def test_schematic_coordinates_are_kept_without_a_crs(result, tmp_path):
    gis.export_assets(_schematic(result), tmp_path)
    for name in gis.LAYERS:
        layer = gpd.read_file(tmp_path / "assets.gpkg", layer=name)
        assert layer.crs is None
        assert layer.geometry.notna().all() and len(layer)
        assert all(
            s.startswith("schematic model coordinates, no CRS") for s in layer.geometry_source
        )
        info = pyogrio.read_info(tmp_path / "assets.gpkg", layer=name)
        assert info["layer_metadata"]["crs"].startswith("none: schematic coordinates")
    # GeoJSON coordinates are WGS 84 degrees by definition: schematic ones are left out
    combined = gpd.read_file(tmp_path / "assets.geojson")
    assert len(combined) == len(result.assets) and combined.geometry.isna().all()


def test_without_opportunities_there_is_no_opportunity_layer(result, tmp_path):
    gis.export_assets(dataclasses.replace(result, opportunities=None), tmp_path)
    names = [str(name) for name, _ in pyogrio.list_layers(tmp_path / "assets.gpkg")]
    assert names == ["transformers", "lines", "buses"]


# --------------------------------------------------------------------------- map
pytestmark_map = pytest.mark.skipif(
    webmap.map_available() is not None, reason=f"map packages: {webmap.map_available()}"
)


@pytestmark_map
def test_feeder_map_tooltips_carry_the_asset_figures(result, tmp_path):
    assert webmap.write_feeder_map(result, tmp_path, tiles=None) == ["feeder_map.html"]
    page = (tmp_path / "feeder_map.html").read_text(encoding="utf-8")
    for alias in (
        "Peak loading without V2G",
        "Year of need without V2G (P50)",
        "Deferral value, feeder-wide program (present worth)",
        "Locational value [$/kW-yr]",
        "Break-even incentive per enrolled EV",
    ):
        assert alias in page, alias
    row = result.opportunities.iloc[0]
    asset = result.assets.loc[row.asset_id]
    expected = {
        "asset": f"{asset['name']} ({row.asset_id})",
        "loading_charging": f"{asset.peak_loading_pct_charging:,.1f} %",
        "need_year": str(int(asset.year_of_need_charging_p50)),
        "usd_per_kw_yr": f"{row.value_usd_per_kw_yr:,.2f}",
        "tier": row.tier,
    }
    for key, value in expected.items():
        assert json.dumps(value)[1:-1] in page, (key, value)
    # no tile layer asked for, and none of folium's unused jQuery/Bootstrap files
    assert "tileLayer" not in page and "bootstrap" not in page and "jquery" not in page


@pytestmark_map
def test_schematic_feeder_map_has_no_tiles_and_says_so(result, tmp_path):
    webmap.write_feeder_map(_schematic(result), tmp_path)  # default tiles: ignored here
    page = (tmp_path / "feeder_map.html").read_text(encoding="utf-8")
    assert "L.CRS.Simple" in page and "tileLayer" not in page
    assert '"minZoom": -12' in page  # model units may need to zoom far out to fit
    assert "L.control.scale" not in page  # model units are not metres
    assert "schematic: the feeder model" in page and "not geography" in page


def test_map_is_skipped_with_a_note_without_its_packages(result, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(webmap, "map_available", lambda: "folium not installed (pip ...)")
    with caplog.at_level(logging.INFO, logger="gridplan.outputs.webmap"):
        assert webmap.write_feeder_map(result, tmp_path) == []
    assert not (tmp_path / "feeder_map.html").exists()
    assert "feeder_map.html not written: folium not installed" in caplog.text

"""Figures, feeder map and GIS export of a small study: every figure is written, is not
empty, is reproducible and changes when the data does; the GIS layers reopen unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from viz_study import viz_study

from gridplan.outputs import figures as plotting
from gridplan.outputs import gis
from gridplan.study import StudyConfig, run

STUDY = viz_study(
    "viz",
    # Financial parameters only: the tornado re-values, no re-runs.
    sensitivity={
        "enabled": True,
        "load_growth": [1.0, 1.0],
        "ev_adoption": [1.0, 1.0],
        "enrollment": [1.0, 1.0],
    },
)


@pytest.fixture(scope="module")
def result():
    return run(StudyConfig(**STUDY))


def _png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=60)
    return buffer.getvalue()


def _no_geo(result):
    feeder = dataclasses.replace(result.feeder, bus_geo=None, line_geo=None)
    return dataclasses.replace(result, feeder=feeder)


# --------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    """Figures written with every power-flow entry point disabled."""
    import pandapower

    import gridplan.powerflow
    from gridplan.powerflow import model, solve, solver

    def forbidden(*args, **kwargs):
        raise AssertionError("plotting must not run a power flow")

    folder = tmp_path_factory.mktemp("figures")
    with pytest.MonkeyPatch.context() as patch:
        for module in (gridplan.powerflow, solver, solve):
            patch.setattr(module, "solve_timeseries", forbidden)
            patch.setattr(module, "iter_timeseries", forbidden)
        for module in (gridplan.powerflow, solver, model):
            patch.setattr(module, "compile_network", forbidden)
        patch.setattr(pandapower, "runpp", forbidden)
        files = plotting.write_figures(result, folder)
    return folder, files


def test_write_figures_writes_png_and_svg(written):
    folder, files = written
    assert files == [f"{name}.{ext}" for name in plotting.STUDY_FIGURES for ext in ("png", "svg")]
    for name in files:
        data = (folder / name).read_bytes()
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            assert len(data) > 10_000
        else:
            assert b"<svg" in data[:2000]
            assert b"<path" in data or b"<image" in data
    assert set(files) == {p.name for p in folder.iterdir()}  # no temporary files left


def test_figures_are_reproducible(result, written, tmp_path):
    folder, files = written
    assert plotting.write_figures(result, tmp_path) == files
    for name in files:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


def _scaled_loading(result, factor: float):
    loading = {case: values * factor for case, values in result.loading_pct.items()}
    return dataclasses.replace(result, loading_pct=loading)


def _changed(result, name: str):
    """The result with the data of figure ``name`` changed."""
    if name in ("loading_duration", "loading_heatmap", "peak_day"):
        return _scaled_loading(result, 1.25)
    if name == "need_probability":
        needs = result.needs.copy()
        needs["need_by_year_probability"] = 1.0 - needs.need_by_year_probability
        return dataclasses.replace(result, needs=needs)
    if name == "deferral_waterfall":
        economics = result.economics.copy()
        economics["deferral_value_usd"] += 150_000.0
        economics["ratepayer_net_benefit_pv_usd"] += 150_000.0
        return dataclasses.replace(result, economics=economics)
    if name == "sensitivity_tornado":
        table = result.sensitivity.copy()
        table["result_high"] = table.result_high + 2.0 * table.swing + 1000.0
        table["swing"] = (table.result_high - table.result_low).abs()
        return dataclasses.replace(result, sensitivity=table)
    if name == "feeder_map":
        assets = result.assets.copy()
        for case in result.horizon.cases:
            assets[f"peak_loading_pct_{case}"] = assets[f"peak_loading_pct_{case}"][::-1].to_numpy()
        return dataclasses.replace(result, assets=assets)
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(plotting.STUDY_FIGURES))
def test_each_figure_is_drawn_and_follows_the_data(result, name):
    draw = plotting.STUDY_FIGURES[name]
    fig = draw(result)
    assert fig is not None and fig.axes
    before = _png(fig)
    assert before[:4] == b"\x89PNG" and len(before) > 5_000
    assert _png(draw(result)) == before  # same data, same image
    assert _png(draw(_changed(result, name))) != before  # other data, other image


def test_figures_never_import_pyplot(result, tmp_path, monkeypatch):
    """Figure objects only: with pyplot unimportable every figure is still drawn, the
    feeder map on coordinates and on the schematic layout included."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    files = plotting.write_figures(result, tmp_path)
    assert files == [f"{name}.{ext}" for name in plotting.STUDY_FIGURES for ext in ("png", "svg")]
    assert plotting.plot_feeder_map(_no_geo(result)).axes


def test_figures_without_data_are_skipped(result, tmp_path):
    bare = dataclasses.replace(result, sensitivity=None, economics=None)
    assert plotting.plot_sensitivity_tornado(bare) is None
    assert plotting.plot_deferral_waterfall(bare) is None
    files = plotting.write_figures(bare, tmp_path)
    assert "sensitivity_tornado.png" not in files and "deferral_waterfall.png" not in files
    assert "feeder_map.png" in files


# --------------------------------------------------------------------------- contents
def test_waterfall_steps_add_up(result):
    row = result.economics.loc["v2g"]
    steps = plotting.waterfall_steps(row)
    assert steps[0] == ("gross deferral value", pytest.approx(row.deferral_value_usd))
    assert steps[-1][0] == "ratepayer net benefit"
    total = sum(value for _, value in steps[:-1])
    assert total == pytest.approx(row.ratepayer_net_benefit_pv_usd)
    # Without program columns the net is the gross value.
    gross = row[["deferral_value_usd"]]
    assert plotting.waterfall_steps(gross)[-1][1] == pytest.approx(row.deferral_value_usd)


def test_heatmap_shows_the_simulated_days(result):
    fig = plotting.plot_loading_heatmap(result)
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 2  # without and with V2G
    days = len(pd.unique(result.time_index.normalize()))
    assert images[0].get_array().shape == (days, 96)


def test_heatmap_of_a_full_year(result):
    index = pd.date_range("2016-01-01", periods=366 * 96, freq="15min")
    rng = np.random.default_rng(0)
    n_assets = len(result.feeder.assets)
    loading = {c: rng.uniform(0, 150, (len(index), n_assets)) for c in result.loading_pct}
    year = dataclasses.replace(result, time_index=index, loading_pct=loading)
    fig = plotting.plot_loading_heatmap(year)
    assert fig.axes[0].get_images()[0].get_array().shape == (366, 96)


def test_day_matrix_handles_gaps():
    index = pd.DatetimeIndex(
        list(pd.date_range("2016-03-01", periods=48, freq="1h"))
        + list(pd.date_range("2016-03-05", periods=24, freq="1h"))
    )
    matrix, days = plotting._day_matrix(index, np.arange(len(index), dtype=float), 1.0)
    assert matrix.shape == (3, 24)
    assert list(days.day) == [1, 2, 5]
    assert matrix[2, 0] == 48 and not np.isnan(matrix).any()


def test_peak_day_is_the_day_of_the_highest_loading(result):
    import matplotlib.dates as mdates

    fig = plotting.plot_peak_day(result)
    asset = result.summary.critical_asset.asset_id
    col = result.feeder.assets.index.get_loc(asset)
    peak = result.time_index[int(np.argmax(result.loading_pct["charging"][:, col]))]
    left, right = fig.axes[0].get_xlim()
    assert mdates.num2date(left).date() == peak.date()
    assert (right - left) == pytest.approx(1.0)  # one day


# --------------------------------------------------------------------------- map
def test_feeder_map_with_coordinates(result):
    fig = plotting.plot_feeder_map(result)
    title = fig.get_suptitle()
    assert "geographic" in title and "schematic" not in title
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "line, not monitored (no loading)" in labels
    # the study result carries per-bus minimum voltages: buses are coloured by them
    assert "bus (per-bus voltage not in the result)" not in labels
    assert set(result.bus_min_vm_pu) >= {"charging", "v2g"}
    assert [ax for ax in fig.axes if ax.get_ylabel() == "bus minimum voltage [pu]"]


def test_feeder_map_without_coordinates(result):
    fig = plotting.plot_feeder_map(_no_geo(result))
    assert "schematic layout (no coordinates)" in fig.get_suptitle()
    assert len(_png(fig)) > 5_000


def test_feeder_map_colours_buses_by_voltage(result):
    n_bus = len(result.feeder.net.bus)
    voltages = {c: np.linspace(0.94, 1.04, n_bus) for c in ("charging", "v2g")}
    fig = plotting.plot_feeder_map(result, bus_min_vm_pu=voltages)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "bus (per-bus voltage not in the result)" not in labels
    colourbars = [ax for ax in fig.axes if ax.get_ylabel() == "bus minimum voltage [pu]"]
    assert len(colourbars) == 1
    plain = _png(plotting.plot_feeder_map(result))  # the study's own voltages
    assert _png(fig) != plain


def test_schematic_layout_of_a_pandapower_net_without_geodata():
    import pandapower.networks as pn

    net = pn.create_kerber_landnetz_freileitung_1()
    net.bus["geo"] = None
    xy = plotting.schematic_layout(net)
    assert list(xy.index) == list(net.bus.index)
    assert np.isfinite(xy.to_numpy()).all()
    root = int(net.ext_grid.bus.iloc[0])
    assert xy.at[root, "y"] == 0.0 and (xy.y <= 0).all()
    # A radial feeder: every branch joins buses one layer apart.
    for a, b in zip(net.line.from_bus, net.line.to_bus, strict=True):
        assert abs(xy.at[a, "y"] - xy.at[b, "y"]) == 1.0
    # Leaves never share a position.
    assert not xy.duplicated().any()


def test_schematic_layout_places_islands():
    import pandapower as pp

    net = pp.create_empty_network()
    b = [pp.create_bus(net, vn_kv=0.4) for _ in range(4)]
    pp.create_ext_grid(net, b[0])
    pp.create_line(net, b[0], b[1], 0.1, "NAYY 4x150 SE")
    pp.create_line(net, b[2], b[3], 0.1, "NAYY 4x150 SE")  # not connected to the source
    xy = plotting.schematic_layout(net)
    assert np.isfinite(xy.to_numpy()).all() and not xy.duplicated().any()


# --------------------------------------------------------------------------- GIS
def test_gis_export_reopens_with_the_same_rows(result, tmp_path):
    import geopandas as gpd
    import pandas as pd

    files = gis.export_assets(result, tmp_path)
    assert files == ["assets.gpkg", "assets.geojson"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assets = result.assets
    # GeoJSON: the combined per-asset layer; GeoPackage: monitored rows of its
    # transformers and lines layers (one geometry type each).
    combined = gpd.read_file(tmp_path / "assets.geojson")
    monitored = pd.concat(
        [
            gpd.read_file(tmp_path / "assets.gpkg", layer=name).query("monitored")
            for name in ("transformers", "lines")
        ]
    )
    monitored = monitored.set_index("asset_id").loc[assets.index].reset_index()
    for layer in (combined, monitored):
        assert len(layer) == len(assets)
        assert list(layer.asset_id) == list(assets.index)
        assert layer.crs.to_epsg() == 4326
        kinds = dict(zip(layer.kind, layer.geometry.geom_type, strict=True))
        assert kinds == {"trafo": "Point", "line": "LineString"}
        for column in ("peak_loading_pct_charging", "peak_loading_pct_v2g", "deferral_value_usd"):
            np.testing.assert_allclose(layer[column], assets[column].to_numpy(), rtol=1e-9)
        np.testing.assert_array_equal(
            layer.year_of_need_charging_p50.to_numpy(dtype=float),
            assets.year_of_need_charging_p50.to_numpy(dtype=float),
        )
        critical = result.summary.critical_asset.asset_id
        assert list(layer.asset_id[layer.critical]) == [critical]
    # Points sit on the map of the feeder.
    layer = gpd.read_file(tmp_path / "assets.gpkg", layer="transformers")
    bounds = result.feeder.bus_geo.total_bounds
    x0, y0, x1, y1 = layer.total_bounds
    assert bounds[0] <= x0 and x1 <= bounds[2] and bounds[1] <= y0 and y1 <= bounds[3]


def test_gis_export_follows_the_data(result, tmp_path):
    import geopandas as gpd

    assets = result.assets.copy()
    assets["deferral_value_usd"] = np.arange(len(assets), dtype=float)
    gis.export_assets(dataclasses.replace(result, assets=assets), tmp_path)
    layer = gpd.read_file(tmp_path / "assets.geojson")
    np.testing.assert_allclose(layer.deferral_value_usd, np.arange(len(assets)))


def test_gis_export_without_coordinates(result, tmp_path):
    import geopandas as gpd

    gis.export_assets(_no_geo(result), tmp_path)
    for name, layer_name in [("assets.geojson", None), *(("assets.gpkg", n) for n in gis.LAYERS)]:
        layer = gpd.read_file(tmp_path / name, layer=layer_name)
        if layer_name is None:
            assert len(layer) == len(result.assets)
        assert len(layer) and layer.geometry.isna().all()
        assert set(layer.geometry_source) == {"none: feeder has no coordinates"}


# --------------------------------------------------------------------------- batch
def test_batch_screen_figure(tmp_path):
    table = pd.DataFrame(
        {
            "feeder": ["a", "a", "b", "b"],
            "status": ["ok", "ok", "ok", "failed"],
            "net_deferral_value_usd": [1000.0, 2000.0, -500.0, np.nan],
            "peak_loading_pct_charging": [120.0, 130.0, 90.0, np.nan],
            "peak_loading_pct_v2g": [100.0, 110.0, 95.0, np.nan],
        }
    )
    files = plotting.write_batch_figures(table, tmp_path)
    assert files == ["screen_value.png", "screen_value.svg"]
    first = (tmp_path / "screen_value.png").read_bytes()
    table.loc[0, "net_deferral_value_usd"] = 9000.0
    plotting.write_batch_figures(table, tmp_path)
    assert (tmp_path / "screen_value.png").read_bytes() != first
    assert plotting.write_batch_figures(table[table.status == "failed"], tmp_path / "x") == []

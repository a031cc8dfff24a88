"""Feeder library: every bundled feeder loads, is consistent, and its power flow converges."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pytest

from gridplan.core.errors import ConfigError
from gridplan.grid.feeders import bundled_feeders, load_feeder, peak_step, peak_week
from gridplan.powerflow.solver import solve_timeseries

BUNDLED = ["lv-semiurban", "lv-rural", "mv-semiurban", "us-residential", "ca-residential"]
#: Steps of each feeder's profile year: SimBench's 2016 (a leap year) or the nominal typical
#: year 2017 of the TMY-based feeders (us-residential is ca-residential's deprecated second
#: name), at 15 min.
STEPS = {"ca-residential": 35040, "us-residential": 35040}


def test_bundled_feeders_listed():
    assert set(BUNDLED) <= set(bundled_feeders())


@pytest.mark.parametrize("name", BUNDLED)
def test_feeder_loads_and_converges_at_peak(name):
    feeder = load_feeder(name)
    net = feeder.net
    n_t = len(feeder.time_index)
    assert n_t == STEPS.get(name, 35136)  # one profile year of 15-minute steps
    assert feeder.step_h == pytest.approx(0.25)
    # a fixed step all year (SimBench's local-time labels skip and repeat an hour)
    assert np.unique(np.diff(feeder.time_index.asi8)).size == 1
    assert feeder.load_p_kw.shape == (n_t, len(net.load))
    assert feeder.load_q_kvar.shape == (n_t, len(net.load))
    assert feeder.sgen_p_kw.shape == (n_t, len(net.sgen))
    assert np.isfinite(feeder.load_p_kw).all() and np.isfinite(feeder.sgen_p_kw).all()
    assert feeder.households.shape == (len(net.load),)
    assert feeder.households.sum() > 0
    assert len(feeder.assets) > 0
    assert (feeder.assets.rating_kva > 0).all()
    assert feeder.bus_geo is not None and len(feeder.bus_geo) == len(net.bus)

    # Reference: pandapower's own runpp at the peak step, against gridplan's solver.
    k = peak_step(feeder)
    net.load["p_mw"] = feeder.load_p_kw[k] / 1e3
    net.load["q_mvar"] = feeder.load_q_kvar[k] / 1e3
    net.load["scaling"] = 1.0
    net.sgen["p_mw"] = feeder.sgen_p_kw[k] / 1e3
    net.sgen["scaling"] = 1.0
    pp.runpp(net, numba=False)
    assert net.converged
    flow = solve_timeseries(
        net,
        feeder.load_p_kw[k : k + 1],
        load_q_kvar=feeder.load_q_kvar[k : k + 1],
        sgen_p_kw=feeder.sgen_p_kw[k : k + 1],
    )
    assert flow.converged.all()
    np.testing.assert_allclose(flow.vm_pu[0], net.res_bus.vm_pu.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(
        flow.trafo_loading_pct[0], net.res_trafo.loading_percent.to_numpy(), atol=1e-3
    )


def test_peak_week_covers_peak(us_feeder):
    week = peak_week(us_feeder)
    assert week.stop - week.start == 7 * 96
    assert week.start <= peak_step(us_feeder) < week.stop


def test_us_feeder_has_service_transformers(us_feeder):
    from gridplan.grid.builders import SERVICE_XFMR_SIZES_KVA

    trafos = us_feeder.net.trafo
    assert set(trafos.sn_mva * 1000) <= set(SERVICE_XFMR_SIZES_KVA)
    assert (trafos.vn_hv_kv == 12.47).all()
    homes = us_feeder.net.load.groupby("bus").size()
    assert homes.min() >= 2 and homes.max() <= 30
    # every transformer has upgrade options larger than itself
    trafo_assets = us_feeder.assets[us_feeder.assets.kind == "trafo"]
    assert set(trafo_assets.index) <= set(us_feeder.upgrades.asset_id)
    # home profiles are scaled to the stated annual energy (a typical year of 8,760 h)
    annual = us_feeder.load_p_kw.sum(axis=0) * us_feeder.step_h
    np.testing.assert_allclose(annual, 6250, rtol=1e-9)
    # sized for the homes' peak: no transformer is over its rating without EVs and PV
    load_bus = us_feeder.net.load.bus.to_numpy()
    for _, row in trafos.iterrows():
        homes = load_bus == row.lv_bus
        p, q = us_feeder.load_p_kw[:, homes].sum(1), us_feeder.load_q_kvar[:, homes].sum(1)
        assert np.hypot(p, q).max() <= row.sn_mva * 1000


def test_feeder_arrays_are_read_only_and_nets_independent(us_feeder):
    with pytest.raises(ValueError):
        us_feeder.load_p_kw[0, 0] = 1.0
    simbench = load_feeder("lv-semiurban")  # profiles kept as factors: a fresh array
    with pytest.raises(ValueError):
        simbench.load_p.basis[0, 0] = 1.0
    copy = simbench.load_p_kw
    copy[0, 0] = 1e6
    assert simbench.load_p_kw[0, 0] != 1e6
    other = load_feeder("us-residential")
    other.net.load.loc[0, "p_mw"] = 99.0
    assert load_feeder("us-residential").net.load.p_mw.iloc[0] != 99.0


def test_unknown_feeder_suggests_name():
    with pytest.raises(ConfigError, match="did you mean 'us-residential'"):
        load_feeder("us-residental")


def _write_spec(tmp_path, body: str):
    path = tmp_path / "f.toml"
    path.write_text(body, encoding="utf-8")
    return path


SMALL_NET = """
name = "small"
[network]
source = "pandapower"
function = "example_simple"
[households]
rule = "given"
values = { "load" = 4 }
[[assets]]
kind = "trafo"
"""


def test_csv_profiles(tmp_path):
    import pandas as pd

    times = pd.date_range("2024-01-01", periods=96, freq="15min")
    pd.DataFrame({"time": times, "load": np.linspace(100, 500, 96)}).to_csv(
        tmp_path / "p.csv", index=False
    )
    spec = _write_spec(tmp_path, SMALL_NET + '[profiles]\nsource = "csv"\npath = "p.csv"\n')
    feeder = load_feeder(spec)
    assert feeder.load_p_kw.shape == (96, 1)
    assert feeder.load_p_kw[-1, 0] == pytest.approx(500)
    assert feeder.households.tolist() == [4]


@pytest.mark.parametrize(
    ("csv", "match"),
    [
        ("time,load,extra\n2024-01-01 00:00,1,2\n2024-01-01 00:15,1,2\n", "expected 1"),
        ("time,load\n2024-01-01 00:00,1\n2024-01-01 00:15,nan\n", "row 2"),
        ("when,load\n2024-01-01 00:00,1\n2024-01-01 00:15,1\n", "no time column"),
        ("time,load\n2024-01-01 00:00,1\n2024-01-01 00:30,1\n2024-01-01 00:45,1\n", "fixed"),
    ],
)
def test_bad_profile_csv(tmp_path, csv, match):
    (tmp_path / "p.csv").write_text(csv, encoding="utf-8")
    spec = _write_spec(tmp_path, SMALL_NET + '[profiles]\nsource = "csv"\npath = "p.csv"\n')
    with pytest.raises(ConfigError, match=match) as info:
        load_feeder(spec)
    assert "p.csv" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            'name = "x"\n[network]\nsource = "simbench"\ncode = "nope"\n[[assets]]\nkind="trafo"\n',
            "network.code",
        ),
        (
            'name = "x"\n[network]\nsource = "simbnch"\ncode = "a"\n[[assets]]\nkind="trafo"\n',
            "network.source",
        ),
        (
            'name = "x"\ngrowth_rat = 0.1\n[network]\nsource = "simbench"\n'
            'code = "1-LV-rural1--0-sw"\n'
            '[[assets]]\nkind="trafo"\n',
            "growth_rat",
        ),
        (
            'name = "x"\n[network]\nsource = "pandapower"\nfunction = "example_simple"\n'
            '[[assets]]\nkind="trafo"\nlimit_pct = "high"\n',
            "assets.0.limit_pct",
        ),
        ('name = "x"\n[network]\nsource = "pandapower"\nfunction = "example_simple"\n', "assets"),
        (
            'name = "x"\n[network]\nsource = "pandapower"\nfunction = "example_simple"\n'
            '[[assets]]\nkind="trafo"\nselect=["no such trafo"]\n',
            "assets[0].select",
        ),
    ],
)
def test_bad_feeder_spec(tmp_path, body, field):
    spec = _write_spec(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_feeder(spec)
    message = str(info.value)
    assert str(spec) in message and field in message
    assert "\n" not in message


def test_upgrade_catalog_ids(tmp_path):
    from gridplan.grid.catalog import load_upgrade_catalog

    catalog = load_upgrade_catalog().set_index("upgrade_id")
    feeder = load_feeder("us-residential")
    row = catalog.loc["xfmr_1ph_aps_75kva"]
    options = feeder.upgrades[feeder.upgrades.new_rating_kva == 75.0]
    assert len(options) > 0
    assert (options.cost_usd == row.cost_usd).all()
    assert (options.dollar_year == row.dollar_year).all()
    assert options.source.str.contains("xfmr_1ph_aps_75kva").all()
    # a per-asset override beside the catalog id wins
    body = SMALL_NET.replace('[[assets]]\nkind = "trafo"\n', "") + (
        '[profiles]\nsource = "csv"\npath = "p.csv"\n[[assets]]\nkind = "trafo"\n'
        '[[upgrades]]\nkind = "trafo"\ncatalog_id = "xfmr_3ph_sce_2500kva"\ncost_usd = 1\n'
        "new_rating_kva = 40000\n"
    )
    import pandas as pd

    times = pd.date_range("2024-01-01", periods=4, freq="15min")
    pd.DataFrame({"time": times, "load": [1.0, 2, 3, 4]}).to_csv(tmp_path / "p.csv", index=False)
    spec = _write_spec(tmp_path, body)
    small = load_feeder(spec)
    assert small.upgrades.cost_usd.tolist() == [1.0]
    assert small.upgrades.new_rating_kva.tolist() == [40000.0]
    assert small.upgrades.dollar_year.tolist() == [catalog.loc["xfmr_3ph_sce_2500kva"].dollar_year]


@pytest.mark.parametrize(
    ("upgrade", "match"),
    [
        ('catalog_id = "xfmr_3ph_pge_750kv"', "did you mean 'xfmr_3ph_pge_750kva'"),
        ('catalog_id = "line_ug_pge_2023"', "not a trafo"),
        ("new_rating_kva = 100\ncost_usd = 5", "dollar_year"),
    ],
)
def test_bad_upgrade_option(tmp_path, upgrade, match):
    body = SMALL_NET + f'[[upgrades]]\nkind = "trafo"\n{upgrade}\n'
    spec = _write_spec(tmp_path, body)
    with pytest.raises(ConfigError, match=match) as info:
        load_feeder(spec)
    assert "upgrades" in str(info.value) and str(spec) in str(info.value)

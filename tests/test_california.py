"""California profiles on any network: the ``doe_tmy3`` profile source (issue 18)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridplan.core.errors import ConfigError
from gridplan.grid import california, loadshapes
from gridplan.grid.feeders import load_feeder

SPEC = """
name = "four-bus-ca"
[network]
source = "pandapower"
function = "simple_four_bus_system"
[profiles]
source = "doe_tmy3"
[profiles.doe_tmy3]
annual_energy = "{energy}"
seed = 3
[households]
rule = "annual_energy"
household_annual_kwh = 10791.0
residential_profiles = ["residential"]
[[assets]]
kind = "trafo"
"""


def _spec(tmp_path, energy: str = "peak"):
    path = tmp_path / "f.toml"
    path.write_text(SPEC.format(energy=energy), encoding="utf-8")
    return path


def test_doe_tmy3_on_a_pandapower_network(tmp_path) -> None:
    """Any network: nominal kW read as peak, residential diversity, PV added per customer."""
    feeder = load_feeder(_spec(tmp_path))
    assert feeder.time_index.equals(loadshapes.typical_year_index(60))
    n_load = len(feeder.net.load)
    assert feeder.load_p_kw.shape == (8760, n_load)
    assert feeder.sgen_p_kw.shape == (8760, len(feeder.net.sgen))
    # annual energy = nominal kW x 8,760 h x the BASE home's load factor
    base = loadshapes.residential_shapes()["BASE"].to_numpy()
    expected = feeder.net.load.p_mw.to_numpy() * 1000 * 8760 * base.mean() / base.max()
    np.testing.assert_allclose(feeder.load_p_kw.sum(axis=0), expected, rtol=1e-9)
    assert set(feeder.net.load.profile) == {"residential"}
    # reactive power keeps each load's nominal power factor
    ratio = feeder.net.load.q_mvar.to_numpy() / feeder.net.load.p_mw.to_numpy()
    np.testing.assert_allclose(feeder.load_q_kvar, feeder.load_p_kw * ratio, rtol=1e-12)
    # PV: zero at night, existing sgens of the network follow the pvlib profile too
    night = (feeder.time_index.hour >= 21) | (feeder.time_index.hour < 3)
    assert np.all(feeder.sgen_p_kw[night] == 0.0)
    assert feeder.sgen_p_kw.max() > 0


def test_profile_energy_needs_network_profiles(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_feeder(_spec(tmp_path, "profile"))
    assert info.value.field == "profiles.doe_tmy3.annual_energy"
    assert str(tmp_path / "f.toml") in str(info.value)


def test_classes_and_pv_rules() -> None:
    """Rule 3 splits residential loads into customers; rule 5 draws PV per customer."""
    import pandapower as pp

    net = pp.create_empty_network()
    bus = pp.create_bus(net, 0.4)
    pp.create_ext_grid(net, bus)
    for k, kw in enumerate([5.0, 5.0, 400.0]):
        pp.create_load(net, bus, p_mw=kw / 1000, q_mvar=kw / 3000, name=f"L{k}")
    net.load["profile"] = ["residential", "residential", "commercial"]
    index = loadshapes.typical_year_index(60)
    annual = np.array([6000.0, 60000.0, 300000.0])
    reference = (index, np.tile(annual / 8760.0, (8760, 1)))
    spec = california.DoeTmy3Spec(seed=1)
    out = california.build_profiles(net, spec, reference=reference)
    np.testing.assert_allclose(out.load_p_kw.sum(axis=0), annual, rtol=1e-9)
    # 300 MWh: stand-alone retail (311 MWh/yr) is the nearest reference building (log scale)
    assert list(out.profile) == ["residential", "residential", "standalone_retail"]
    # the 60 MWh load is ~6 customers: smoother (lower peak per energy) than one home
    peak_per_kwh = out.load_p_kw.max(axis=0) / annual
    assert peak_per_kwh[1] < 0.8 * peak_per_kwh[0]
    assert len(net.sgen) == len(out.pv_dc_kw) and out.sgen_p_kw.shape[1] == len(net.sgen)
    for size in out.pv_dc_kw:  # whole systems of the class's size
        assert any(np.isclose(size / s, round(size / s)) for s in (7.1, 47.0))


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile 'offices'"):
        california.DoeTmy3Spec(classes={"commercial": "offices"})


def test_ca_epri_ckt7_peaks_on_summer_evenings() -> None:
    """ca-epri-ckt7: its 50 highest base-load hours fall mostly in June-October, 16-21 h."""
    feeder = load_feeder("ca-epri-ckt7")
    assert feeder.time_index.equals(loadshapes.typical_year_index(60))
    base = pd.Series(feeder.load_p_kw.sum(axis=1), index=feeder.time_index)
    top = base.nlargest(50).index
    summer = (top.month >= 6) & (top.month <= 10)
    evening = (top.hour >= 16) & (top.hour < 21)
    assert summer.mean() >= 0.9
    assert (summer & evening).mean() > 0.5
    # rooftop PV was added (about 15 % of residential customers) and is zero at night
    assert len(feeder.net.sgen) > 0
    night = (feeder.time_index.hour >= 21) | (feeder.time_index.hour < 3)
    assert np.all(feeder.sgen_p_kw[night] == 0.0)
    # each load keeps the annual energy of its OpenDSS profile (epri-ckt7, same network)
    original = load_feeder("epri-ckt7")
    np.testing.assert_allclose(
        feeder.load_p_kw.sum(axis=0), original.load_p_kw.sum(axis=0), rtol=1e-9
    )


def test_profile_year_is_data_not_description() -> None:
    """Weather-year honesty: the spec's profile source says typical / calendar / nominal."""
    from gridplan.grid.feeders import read_feeder_spec, resolve_feeder_path
    from gridplan.grid.profile_year import profile_year

    def year(name: str, first: str):
        spec = read_feeder_spec(resolve_feeder_path(name))
        return profile_year(spec, pd.DatetimeIndex([pd.Timestamp(first)]))

    for name in ("ca-residential", "us-residential", "ca-epri-ckt7"):
        typical = year(name, "2017-01-01")
        assert typical.kind == "typical" and "typical" in typical.label
        assert "Long Beach" in (typical.climate or "") and typical.diversity
        assert any("CC BY 4.0" in s for s in typical.sources)
    assert year("lv-rural", "2016-01-01").label == "2016 calendar"
    assert year("epri-ckt7", "2021-01-01").kind == "nominal"
    assert profile_year(None, pd.DatetimeIndex([pd.Timestamp("2020-01-01")])).kind == "calendar"

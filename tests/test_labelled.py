"""Labelled results for notebook users (issue 22): the horizon as an xarray Dataset, the
profiles and the detail draw's series as DataFrames indexed by time and asset/load id."""

from __future__ import annotations

import copy
import dataclasses
import sys

import numpy as np
import pandas as pd
import pytest

from gridplan.core.errors import GridplanError
from gridplan.study import run
from gridplan.study.horizon import HORIZON_VARIABLES, HorizonResult

xr = pytest.importorskip("xarray")

#: A few seconds: two days, three years, two draws, no targeted search.
SMALL = {
    "name": "labelled",
    "feeder": "ca-residential",
    "year": 2030,
    "base_year": 2026,
    "seed": 7,
    "period": {"kind": "range", "start": "2017-09-03", "end": "2017-09-05"},
    "horizon": {"start": 2029, "end": 2031, "draws": 2, "confidence": 0.5},
    "fleet": {"evs_per_household": 0.8, "v2g_enrolled_share": 0.6},
    "targeting": {"enabled": False},
}


@pytest.fixture(scope="module")
def result():
    return run(SMALL)


# --------------------------------------------------------------------------- xarray
def test_every_array_of_the_horizon_is_a_variable():
    """A new array on HorizonResult must be given its dims and units here."""
    arrays = {
        f.name
        for f in dataclasses.fields(HorizonResult)
        if f.type in ("np.ndarray", np.ndarray) and f.name != "years"
    }
    assert arrays == set(HORIZON_VARIABLES)


def test_to_xarray_labels_and_values(result):
    h = result.horizon
    ds = h.to_xarray()
    assert dict(ds.sizes) == {
        "year": len(h.years),
        "draw": 2,
        "case": len(h.cases),
        "asset": len(h.asset_ids),
    }
    assert ds.year.dtype.kind == "i" and ds.year.to_numpy().tolist() == [2029, 2030, 2031]
    assert ds.draw.to_numpy().tolist() == [0, 1]
    assert ds.case.to_numpy().tolist() == h.cases
    assert ds.asset.to_numpy().tolist() == h.asset_ids == list(result.feeder.assets.index)
    assert ds.strategy.dims == ("case",)
    assert ds.strategy.sel(case="base").item() == ""
    assert ds.strategy.sel(case="charging").item() == h.strategies["charging"]
    for name, (dims, units, text) in HORIZON_VARIABLES.items():
        variable = ds[name]
        assert variable.dims == dims, name
        assert variable.attrs["units"] == units and units, name
        assert variable.attrs["long_name"] == text, name
        np.testing.assert_array_equal(variable.to_numpy(), getattr(h, name), err_msg=name)
    assert ds.peak_loading_pct.attrs["units"] == "%"
    assert ds.overload_energy_kvah.attrs["units"] == "kVA h"
    assert ds.export_kwh.attrs["units"] == "kWh"


def test_to_xarray_selects_by_label(result):
    h = result.horizon
    ds = h.to_xarray()
    asset = h.asset_ids[3]
    picked = ds.peak_loading_pct.sel(year=2030, draw=1, case="charging", asset=asset).item()
    assert picked == h.peak_loading_pct[1, 1, h.case("charging"), 3]
    need = ds.need.sel(case="charging").any("draw")
    assert need.dims == ("year", "asset")


def test_to_xarray_attaches_asset_columns(result):
    h = result.horizon
    info = pd.DataFrame(
        {"name": [f"n{i}" for i in range(len(h.asset_ids))], "asset_owner": "utility"},
        index=list(reversed(h.asset_ids)),  # reindexed to the horizon's order
    )
    ds = h.to_xarray(info)
    assert ds.asset_name.dims == ("asset",)
    assert ds.asset_name.sel(asset=h.asset_ids[0]).item() == f"n{len(h.asset_ids) - 1}"
    assert (ds.asset_owner == "utility").all()


def test_study_to_xarray(result):
    ds = result.to_xarray()
    assets = result.feeder.assets
    assert ds.asset_name.to_numpy().tolist() == assets.name.tolist()
    assert ds.asset_kind.to_numpy().tolist() == assets.kind.tolist()
    np.testing.assert_array_equal(ds.asset_rating_kva, assets.rating_kva)
    assert ds.asset_rating_kva.attrs["units"] == "kVA"
    assert ds.attrs["study"] == "labelled"
    assert ds.attrs["feeder"] == "ca-residential"
    assert ds.attrs["detail_year"] == 2030
    assert ds.attrs["detail_draw"] == result.summary.detail_draw


def test_to_xarray_without_xarray_says_what_to_install(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray -> ImportError
    for call in (result.horizon.to_xarray, result.to_xarray):
        with pytest.raises(GridplanError) as info:
            call()
        message = str(info.value)
        assert "pip install 'gridplan[xarray]'" in message and "\n" not in message


# --------------------------------------------------------------------------- DataFrames
def test_loading_pct_frame(result):
    for case in result.horizon.cases:
        frame = result.loading_pct_frame(case)
        assert frame.index.equals(result.time_index)
        assert frame.columns.name == "asset_id"
        assert frame.columns.tolist() == list(result.feeder.assets.index)
        np.testing.assert_array_equal(frame.to_numpy(), result.loading_pct[case])
    every = result.loading_pct_frame()
    assert every.columns.names == ["case", "asset_id"]
    assert list(every.columns.levels[0]) == sorted(result.horizon.cases)
    pd.testing.assert_frame_equal(every["v2g"], result.loading_pct_frame("v2g"))
    with pytest.raises(GridplanError, match=r"no case 'v3g'.*charging"):
        result.loading_pct_frame("v3g")


def test_min_vm_pu_frame(result):
    frame = result.min_vm_pu_frame()
    assert frame.index.equals(result.time_index)
    assert frame.columns.tolist() == list(result.min_vm_pu)
    np.testing.assert_array_equal(frame["charging"], result.min_vm_pu["charging"])


def test_ev_p_kw_frame(result):
    frame = result.ev_p_kw_frame("v2g")
    dispatch = result.ev_dispatch["v2g"]
    assert frame.index.equals(result.time_index)
    assert frame.columns.tolist() == result.feeder.net.load.name.tolist()
    np.testing.assert_array_equal(frame.to_numpy(), dispatch.power_by_load_kw)
    assert (frame.to_numpy() < 0).any()  # V2G export is negative
    by_index = result.ev_p_kw_frame("charging", label="index")
    assert by_index.columns.tolist() == result.feeder.net.load.index.tolist()
    with pytest.raises(GridplanError, match="no case 'base'"):
        result.ev_p_kw_frame("base")


def test_feeder_profile_frames(us_feeder):
    f = us_feeder
    load = f.load_p_kw_frame()
    assert load.index.equals(f.time_index) and load.index.name == "time"
    assert load.columns.name == "load"
    assert load.columns.tolist() == f.net.load.name.tolist()
    np.testing.assert_array_equal(load.to_numpy(), f.load_p_kw)
    first = f.net.load.name.iloc[0]
    np.testing.assert_array_equal(load[first], f.load_p_kw[:, 0])
    q = f.load_q_kvar_frame(label="index")
    assert q.columns.name == "load_index" and q.columns.tolist() == f.net.load.index.tolist()
    np.testing.assert_array_equal(q.to_numpy(), f.load_q_kvar)
    pv = f.sgen_p_kw_frame()
    assert pv.columns.tolist() == f.net.sgen.name.tolist()
    np.testing.assert_array_equal(pv.to_numpy(), f.sgen_p_kw)


def test_feeder_frame_needs_unique_names(us_feeder):
    net = copy.deepcopy(us_feeder.net)
    net.load.loc[net.load.index[1], "name"] = net.load.name.iloc[0]
    feeder = dataclasses.replace(us_feeder, net=net)
    with pytest.raises(GridplanError, match="repeated names; use label='index'"):
        feeder.load_p_kw_frame()
    assert feeder.load_p_kw_frame(label="index").shape == feeder.load_p_kw.shape
    with pytest.raises(GridplanError, match="shape"):
        feeder.element_frame(feeder.load_p_kw[:, :3], "load")


# --------------------------------------------------------------------------- README
def test_readme_defaults_table_is_the_defaults():
    """Every literal default in the README's table is StudyConfig's (issue 22: a README
    that showed chosen values as defaults)."""
    import re
    import tomllib
    from pathlib import Path

    from gridplan.study.config import StudyConfig

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Defaults", 1)[1].split("\n## ", 1)[0]
    config = StudyConfig(name="x", feeder="ca-residential")
    checked = 0
    for fields, values in re.findall(r"^\| (`[^|]+`) \| (`[^|]+`) \|", section, re.M):
        names = re.findall(r"`([^`]+)`", fields)
        literals = re.findall(r"`([^`]+)`", values)
        if len(names) != len(literals):
            continue
        for name, literal in zip(names, literals, strict=True):
            try:
                expected = tomllib.loads(f"v = {literal}")["v"]
            except tomllib.TOMLDecodeError:
                continue  # e.g. `year`: a reference, not a literal
            if name == "fleet.evs_per_household":  # None: the constant default trajectory
                value = config.fleet.adoption_spec().value
            else:
                value = config
                for part in name.split("."):
                    value = getattr(value, part)
            assert value == expected, name
            checked += 1
    assert checked >= 15


@pytest.mark.slow
def test_readme_python_snippet_runs(capsys):
    """The README's override-and-compare snippet runs as written (two quick-start runs,
    about a minute)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python and notebooks", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})  # our own README
    out = capsys.readouterr().out
    assert "v2g_enrolled_share" in out and "2040" in out

"""Tests of gridplan.powerflow.solver against pandapower.runpp (the reference path).

Every accuracy test solves a series with ``solve_timeseries`` and re-solves selected steps
with ``pandapower.runpp`` (default settings) on a copy of the net whose loads and sgens are
set to that step's values. Tolerances (issue 5): |Δvm| ≤ 1e-6 pu, |Δloading| ≤ 1e-3
percentage points for lines and transformers.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandapower as pp
import pytest

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.powerflow.solver import (
    CompiledNetwork,
    FlowResult,
    UnsupportedElementError,
    compile_network,
    iter_timeseries,
    solve_timeseries,
)

# pandapower logs a warning on every runpp when numba is missing; keep test output readable.
logging.getLogger("pandapower").setLevel(logging.ERROR)

VM_TOL_PU = 1e-6
LOADING_TOL_PCT = 1e-3
VA_TOL_DEG = 1e-4
I_TOL_KA = 1e-5
LOSS_TOL_KW = 1e-3

FAST_GRIDS = ["1-LV-semiurb4--0-sw", "1-LV-rural1--0-sw", "1-MV-semiurb--0-sw"]
SLOW_GRIDS = [*FAST_GRIDS, "1-LV-urban6--0-sw", "1-MV-rural--0-sw", "1-MV-urban--0-sw"]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Series:
    """Absolute load / sgen series of a net [kW, kvar], (time, element)."""

    load_p_kw: np.ndarray
    load_q_kvar: np.ndarray
    sgen_p_kw: np.ndarray
    sgen_q_kvar: np.ndarray


@functools.cache
def _simbench(code: str) -> tuple[Any, Series]:
    simbench = pytest.importorskip("simbench")
    net = simbench.get_simbench_net(code)
    prof = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    n_steps = prof[("load", "p_mw")].shape[0]
    sgen_q = prof.get(("sgen", "q_mvar"))
    series = Series(
        load_p_kw=prof[("load", "p_mw")].to_numpy() * 1e3,
        load_q_kvar=prof[("load", "q_mvar")].to_numpy() * 1e3,
        sgen_p_kw=prof[("sgen", "p_mw")].to_numpy() * 1e3,
        sgen_q_kvar=(
            sgen_q.to_numpy() * 1e3
            if sgen_q is not None
            else np.broadcast_to(net.sgen.q_mvar.to_numpy() * 1e3, (n_steps, len(net.sgen)))
        ),
    )
    return net, series


def _select_steps(series: Series, n: int) -> np.ndarray:
    """``n`` steps spread over the year, always including peak load, peak PV and peak export."""
    load = series.load_p_kw.sum(axis=1)
    pv = series.sgen_p_kw.sum(axis=1)
    special = [int(load.argmax()), int(pv.argmax()), int((load - pv).argmin())]
    spread = np.linspace(0, load.size - 1, n - len(special)).round().astype(int)
    steps = np.unique(np.r_[special, spread])
    k = 0
    while steps.size < n:  # fill up collisions with the next unused steps
        steps = np.unique(np.r_[steps, (spread[k] + 1) % load.size])
        k += 1
    return steps


def _reference(net: Any, series: Series, steps: np.ndarray) -> dict[str, np.ndarray]:
    """pandapower.runpp results for the given steps, stacked as (step, element)."""
    ref = copy.deepcopy(net)
    ref.load["scaling"] = 1.0
    ref.sgen["scaling"] = 1.0
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("vm", "va", "line", "line_i", "trafo", "losses")
    }
    for k in steps:
        ref.load["p_mw"] = series.load_p_kw[k] / 1e3
        ref.load["q_mvar"] = series.load_q_kvar[k] / 1e3
        ref.sgen["p_mw"] = series.sgen_p_kw[k] / 1e3
        ref.sgen["q_mvar"] = series.sgen_q_kvar[k] / 1e3
        pp.runpp(ref)
        out["vm"].append(ref.res_bus.vm_pu.to_numpy())
        out["va"].append(ref.res_bus.va_degree.to_numpy())
        out["line"].append(ref.res_line.loading_percent.to_numpy())
        out["line_i"].append(ref.res_line.i_ka.to_numpy())
        out["trafo"].append(ref.res_trafo.loading_percent.to_numpy())
        switch_loss = 0.0
        if len(ref.res_switch) and "p_from_mw" in ref.res_switch:
            switch_loss = np.nansum(
                ref.res_switch.p_from_mw.to_numpy(float) + ref.res_switch.p_to_mw.to_numpy(float)
            )
        out["losses"].append(
            np.array([(ref.res_line.pl_mw.sum() + ref.res_trafo.pl_mw.sum() + switch_loss) * 1e3])
        )
    return {k: np.array(v) for k, v in out.items()}


def _assert_close(name: str, ours: np.ndarray, ref: np.ndarray, tol: float) -> None:
    assert ours.shape == ref.shape, name
    nan_ours, nan_ref = np.isnan(ours), np.isnan(ref)
    assert np.array_equal(nan_ours, nan_ref), f"{name}: NaN pattern differs from runpp"
    if (~nan_ref).any():
        err = np.abs(ours[~nan_ref] - ref[~nan_ref]).max()
        assert err <= tol, f"{name}: max |Δ| {err:.3e} > {tol:.1e}"


def _assert_matches_runpp(net: Any, series: Series, res: FlowResult, steps: np.ndarray) -> None:
    ref = _reference(net, series, steps)
    assert res.converged[steps].all()
    _assert_close("vm_pu", res.vm_pu[steps], ref["vm"], VM_TOL_PU)
    _assert_close("va_degree", res.va_degree[steps], ref["va"], VA_TOL_DEG)
    _assert_close("line_loading_pct", res.line_loading_pct[steps], ref["line"], LOADING_TOL_PCT)
    _assert_close("line_i_ka", res.line_i_ka[steps], ref["line_i"], I_TOL_KA)
    _assert_close("trafo_loading_pct", res.trafo_loading_pct[steps], ref["trafo"], LOADING_TOL_PCT)
    _assert_close("losses_kw", res.losses_kw[steps, None], ref["losses"], LOSS_TOL_KW)


def _solve(net: Any, series: Series, **kwargs: Any) -> FlowResult:
    return solve_timeseries(
        net, series.load_p_kw, series.load_q_kvar, series.sgen_p_kw, series.sgen_q_kvar, **kwargs
    )


def _random_series(net: Any, n_steps: int, seed: int, spread: float = 1.6) -> Series:
    rng = np.random.default_rng(seed)
    p = net.load.p_mw.to_numpy() * 1e3
    q = net.load.q_mvar.to_numpy() * 1e3
    g = net.sgen.p_mw.to_numpy() * 1e3
    f = rng.uniform(0.1, spread, (n_steps, p.size))
    return Series(
        load_p_kw=p * f,
        load_q_kvar=q * f,
        sgen_p_kw=g * rng.uniform(0.0, 1.0, (n_steps, g.size)),
        sgen_q_kvar=rng.uniform(-2.0, 2.0, (n_steps, g.size)) * (g > 0),
    )


def radial_1247_net() -> Any:
    """ext_grid → 12.47 kV overhead line → six 12.47/0.24 kV pole transformers (25–75 kVA)
    each feeding three 240 V service drops with one load, plus a small PV system each."""
    net = pp.create_empty_network(name="radial 12.47 kV", f_hz=60.0)
    source = pp.create_bus(net, 12.47, name="substation")
    pp.create_ext_grid(net, source, vm_pu=1.03)
    prev = source
    for i, kva in enumerate([25.0, 37.5, 50.0, 75.0, 50.0, 25.0]):
        mv = pp.create_bus(net, 12.47, name=f"pole {i}")
        pp.create_line_from_parameters(
            net, prev, mv, length_km=0.8, r_ohm_per_km=0.306, x_ohm_per_km=0.381,
            c_nf_per_km=9.0, max_i_ka=0.2, name=f"primary {i}",
        )  # fmt: skip
        lv = pp.create_bus(net, 0.24, name=f"secondary {i}")
        pp.create_transformer_from_parameters(
            net, mv, lv, sn_mva=kva / 1e3, vn_hv_kv=12.47, vn_lv_kv=0.24, vkr_percent=1.1,
            vk_percent=2.2, pfe_kw=kva * 0.003, i0_percent=0.4, name=f"xfmr {i}",
        )  # fmt: skip
        for h in range(3):
            house = pp.create_bus(net, 0.24, name=f"house {i}.{h}")
            pp.create_line_from_parameters(
                net, lv, house, length_km=0.03, r_ohm_per_km=0.25, x_ohm_per_km=0.08,
                c_nf_per_km=0.0, max_i_ka=0.3, name=f"drop {i}.{h}",
            )  # fmt: skip
            pp.create_load(net, house, p_mw=kva / 4e3, q_mvar=kva / 12e3)
        pp.create_sgen(net, lv, p_mw=kva / 3e3)
        prev = mv
    return net


def feature_net() -> Any:
    """A small LV net exercising what the ppc must carry over exactly: merged buses,
    parallel and tapped transformers, an open line switch, an out-of-service line, bus and
    transformer, an isolated bus, an impedance switch, two ext_grids with angles, ZIP loads,
    shunt, storage, ward, motor and out-of-service loads, sgens and gen."""
    net = pp.create_empty_network(sn_mva=1.0)
    hv = pp.create_bus(net, 20.0)
    hv2 = pp.create_bus(net, 20.0)
    pp.create_switch(net, hv, hv2, et="b", closed=True)
    pp.create_ext_grid(net, hv, vm_pu=1.02, va_degree=5.0)
    lv = [pp.create_bus(net, 0.4) for _ in range(8)]
    t0 = pp.create_transformer(net, hv2, lv[0], std_type="0.4 MVA 20/0.4 kV")
    net.trafo.at[t0, "tap_pos"] = 2
    pp.create_transformer(net, hv, lv[0], std_type="0.25 MVA 20/0.4 kV", parallel=2)
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5)]:
        pp.create_line(net, lv[a], lv[b], 0.1, "NAYY 4x150 SE")
    meshing = pp.create_line(net, lv[3], lv[5], 0.2, "NAYY 4x150 SE")
    pp.create_switch(net, lv[3], meshing, et="l", closed=False)
    pp.create_line(net, lv[2], lv[5], 0.2, "NAYY 4x150 SE", in_service=False)
    dead = pp.create_bus(net, 0.4, in_service=False)
    pp.create_line(net, lv[5], dead, 0.1, "NAYY 4x150 SE")
    pp.create_load(net, dead, p_mw=0.01)
    isolated = pp.create_bus(net, 0.4)
    pp.create_switch(net, lv[4], isolated, et="b", closed=False)
    pp.create_load(net, isolated, p_mw=0.01)
    pp.create_switch(net, lv[5], lv[6], et="b", closed=True, z_ohm=0.05)
    pp.create_line(net, lv[6], lv[7], 0.05, "NAYY 4x50 SE")
    hv3 = pp.create_bus(net, 20.0)
    pp.create_ext_grid(net, hv3, vm_pu=1.0, va_degree=5.0)
    pp.create_transformer(net, hv3, lv[7], std_type="0.25 MVA 20/0.4 kV")
    pp.create_transformer(net, hv3, lv[6], std_type="0.25 MVA 20/0.4 kV", in_service=False)
    for i, b in enumerate(lv[1:]):
        pp.create_load(net, b, p_mw=0.02 + 0.005 * i, q_mvar=0.005)
    pp.create_load(net, lv[2], p_mw=0.01, in_service=False)
    pp.create_load(
        net, lv[3], p_mw=0.02, q_mvar=0.01, const_z_p_percent=30, const_i_p_percent=20,
        const_z_q_percent=50,
    )  # fmt: skip
    pp.create_sgen(net, lv[3], p_mw=0.03)
    pp.create_sgen(net, lv[5], p_mw=0.02, q_mvar=-0.005)
    pp.create_sgen(net, lv[5], p_mw=0.02, in_service=False)
    pp.create_shunt(net, lv[2], q_mvar=0.01, p_mw=0.001)
    pp.create_storage(net, lv[4], p_mw=0.01, max_e_mwh=0.1)
    pp.create_ward(net, lv[1], ps_mw=0.005, qs_mvar=0.002, pz_mw=0.001, qz_mvar=0.001)
    pp.create_motor(net, lv[6], pn_mech_mw=0.01, cos_phi=0.9, efficiency_percent=95)
    pp.create_gen(net, lv[6], p_mw=0.01, vm_pu=1.0, in_service=False)
    return net


# --------------------------------------------------------------------------------------
# accuracy against runpp
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", FAST_GRIDS)
def test_simbench_year_matches_runpp(code: str) -> None:
    """Whole year solved; 60 steps incl. peak load / PV / export checked against runpp."""
    net, series = _simbench(code)
    res = _solve(net, series)
    assert res.converged.all()
    assert res.vm_pu.shape == (series.load_p_kw.shape[0], len(net.bus))
    _assert_matches_runpp(net, series, res, _select_steps(series, 60))


@pytest.mark.slow
@pytest.mark.parametrize("code", SLOW_GRIDS)
def test_simbench_500_steps_match_runpp(code: str) -> None:
    net, series = _simbench(code)
    res = _solve(net, series)
    assert res.converged.all()
    _assert_matches_runpp(net, series, res, _select_steps(series, 500))


@functools.cache
def _bundled(name: str) -> tuple[Any, Series]:
    """A bundled feeder's net and its year of profiles, as the study uses them."""
    from gridplan.grid.feeders import load_feeder

    feeder = load_feeder(name)
    n_steps = feeder.load_p_kw.shape[0]
    q_sgen = feeder.net.sgen.q_mvar.to_numpy() * 1e3
    series = Series(
        load_p_kw=feeder.load_p_kw,
        load_q_kvar=feeder.load_q_kvar,
        sgen_p_kw=feeder.sgen_p_kw,
        sgen_q_kvar=np.broadcast_to(q_sgen, (n_steps, q_sgen.size)),
    )
    return feeder.net, series


BUNDLED = ["lv-semiurban", "lv-rural", "mv-semiurban", "us-residential"]
EPRI = ["epri-ckt7", "epri-ckt5"]  # 1,256 and 2,999 buses: runpp takes ~0.1-0.3 s per step


@pytest.mark.parametrize(
    ("name", "n_steps"),
    [
        *((name, 48) for name in BUNDLED),
        ("epri-ckt5", 8),  # ckt7 in the slow run only (each takes ~15 s: load, year, runpp)
        *(pytest.param(name, 500, marks=pytest.mark.slow) for name in BUNDLED + EPRI),
    ],
)
def test_bundled_feeder_year_matches_runpp(name: str, n_steps: int) -> None:
    """Every bundled feeder, as loaded for a study: the whole year solved, steps spread
    over it (with the peak-load, peak-PV and peak-export steps) checked against runpp."""
    net, series = _bundled(name)
    res = _solve(net, series)
    assert res.converged.all()
    steps = _select_steps(series, n_steps)
    assert steps.size == n_steps
    _assert_matches_runpp(net, series, res, steps)


@pytest.mark.parametrize("n_steps", [120, pytest.param(500, marks=pytest.mark.slow)])
def test_radial_1247_net_matches_runpp(n_steps: int) -> None:
    net = radial_1247_net()
    series = _random_series(net, n_steps, seed=5)
    res = _solve(net, series)
    # the series must exercise overloads, not only light steps
    assert np.nanmax(res.trafo_loading_pct) > 100.0
    _assert_matches_runpp(net, series, res, np.arange(n_steps))


@pytest.mark.parametrize("trafo_loading", ["current", "power"])
def test_feature_net_matches_runpp(trafo_loading: str) -> None:
    net = feature_net()
    if trafo_loading == "power":
        net.user_pf_options = {"trafo_loading": "power"}
    series = _random_series(net, 12, seed=3, spread=2.0)
    res = _solve(net, series)
    _assert_matches_runpp(net, series, res, np.arange(12))
    # unsolved buses (out of service, isolated) are NaN; the open-switch aux bus is not
    assert np.isnan(res.vm_pu[:, 10]).all()  # out-of-service bus
    assert np.isnan(res.vm_pu[:, 11]).all()  # isolated bus
    assert np.isfinite(res.vm_pu[:, :10]).all()
    # the out-of-service line carries nothing
    assert (res.line_loading_pct[:, 6] == 0).all()


def test_none_inputs_keep_net_values() -> None:
    """None → the net's p/q × scaling in every step; equals one runpp on the net itself."""
    net = radial_1247_net()
    net.load["scaling"] = 0.8
    net.sgen["scaling"] = 0.5
    net.sgen["q_mvar"] = -0.002
    load_p = np.tile(net.load.p_mw.to_numpy() * net.load.scaling.to_numpy() * 1e3, (3, 1))
    res = solve_timeseries(net, load_p)
    ref = copy.deepcopy(net)
    pp.runpp(ref)
    for k in range(3):
        _assert_close("vm_pu", res.vm_pu[k], ref.res_bus.vm_pu.to_numpy(), VM_TOL_PU)
        _assert_close(
            "trafo", res.trafo_loading_pct[k], ref.res_trafo.loading_percent.to_numpy(), 1e-3
        )


def test_given_inputs_ignore_scaling_and_out_of_service() -> None:
    net = radial_1247_net()
    net.load["scaling"] = 3.0  # ignored for given inputs
    net.load.loc[0, "in_service"] = False  # its input column is ignored
    series = _random_series(net, 4, seed=2)
    res = _solve(net, series)
    ref_net = copy.deepcopy(net)
    bumped = dataclasses.replace(series, load_p_kw=series.load_p_kw.copy())
    bumped.load_p_kw[:, 0] = 1e6  # absurd, but out of service
    res2 = _solve(net, bumped)
    np.testing.assert_array_equal(res.vm_pu, res2.vm_pu)
    _assert_matches_runpp(ref_net, series, res, np.arange(4))


# --------------------------------------------------------------------------------------
# non-convergence
# --------------------------------------------------------------------------------------


def test_absurd_step_is_flagged_not_raised() -> None:
    net = radial_1247_net()
    series = _random_series(net, 30, seed=7)
    bad = 11
    series.load_p_kw[bad] *= 100.0
    series.load_q_kvar[bad] *= 100.0
    res = _solve(net, series, max_iter=60)

    assert not res.converged[bad]
    assert res.iterations[bad] == 60
    for field in ("vm_pu", "va_degree", "line_loading_pct", "line_i_ka", "trafo_loading_pct"):
        assert np.isnan(getattr(res, field)[bad]).all(), field
    assert np.isnan(res.losses_kw[bad])
    good = np.delete(np.arange(30), bad)
    assert res.converged[good].all()
    assert np.isfinite(res.vm_pu[good]).all()
    _assert_matches_runpp(net, series, res, good[::3])

    # pandapower agrees that the step has no solution
    ref = copy.deepcopy(net)
    ref.load["p_mw"] = series.load_p_kw[bad] / 1e3
    ref.load["q_mvar"] = series.load_q_kvar[bad] / 1e3
    with pytest.raises(pp.powerflow.LoadflowNotConverged):
        pp.runpp(ref)


def test_iteration_limit_never_returns_unconverged_values() -> None:
    net = radial_1247_net()
    series = _random_series(net, 10, seed=1)
    res = _solve(net, series, max_iter=1)
    assert not res.converged.any()
    assert np.isnan(res.vm_pu).all()
    assert np.isnan(res.trafo_loading_pct).all()


# --------------------------------------------------------------------------------------
# unsupported elements
# --------------------------------------------------------------------------------------


def _add_gen(net: Any) -> None:
    pp.create_gen(net, 3, p_mw=0.01, vm_pu=1.0)


def _add_trafo3w(net: Any) -> None:
    b1, b2 = pp.create_bus(net, 0.4), pp.create_bus(net, 0.24)
    pp.create_transformer3w(net, 1, b1, b2, std_type="63/25/38 MVA 110/20/10 kV")


def _add_xward(net: Any) -> None:
    pp.create_xward(net, 3, 0.01, 0.0, 0.0, 0.0, 0.1, 0.1, 1.0)


def _add_impedance(net: Any) -> None:
    pp.create_impedance(net, 1, 3, rft_pu=0.01, xft_pu=0.01, sn_mva=1.0)


def _add_dcline(net: Any) -> None:
    pp.create_dcline(net, 1, 3, p_mw=0.01, loss_percent=1, loss_mw=0, vm_from_pu=1, vm_to_pu=1)


def _add_asymmetric_load(net: Any) -> None:
    pp.create_asymmetric_load(net, 3, p_a_mw=0.01)


def _add_controller(net: Any) -> None:
    from pandapower.control import ConstControl
    from pandapower.timeseries import DFData

    data = DFData(net.load[["p_mw"]].T.reset_index(drop=True))
    ConstControl(net, "load", "p_mw", element_index=[0], data_source=data, profile_name=[0])


@pytest.mark.parametrize(
    ("adder", "table"),
    [
        (_add_gen, "gen"),
        (_add_trafo3w, "trafo3w"),
        (_add_xward, "xward"),
        (_add_impedance, "impedance"),
        (_add_dcline, "dcline"),
        (_add_asymmetric_load, "asymmetric_load"),
        (_add_controller, "controller"),
    ],
)
def test_unsupported_elements_raise(adder: Callable[[Any], None], table: str) -> None:
    net = radial_1247_net()
    adder(net)
    load_p = np.tile(net.load.p_mw.to_numpy() * 1e3, (2, 1))
    with pytest.raises(UnsupportedElementError, match=rf"net\.{table} rows \[0\]") as info:
        solve_timeseries(net, load_p)
    assert isinstance(info.value, GridplanError)
    assert info.value.table == table
    assert info.value.indices == [0]


def test_out_of_service_unsupported_elements_are_fine() -> None:
    net = radial_1247_net()
    _add_gen(net)
    net.gen["in_service"] = False
    res = solve_timeseries(net, np.tile(net.load.p_mw.to_numpy() * 1e3, (2, 1)))
    assert res.converged.all()


def test_unsupported_runpp_option_raises() -> None:
    net = radial_1247_net()
    net.user_pf_options = {"distributed_slack": True}
    with pytest.raises(UnsupportedElementError, match="distributed_slack"):
        compile_network(net)


# --------------------------------------------------------------------------------------
# inputs, parameters, determinism
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise_config_error() -> None:
    net = radial_1247_net()
    p = np.ones((5, len(net.load)))
    with pytest.raises(ConfigError, match=r"load_p_kw.*18 columns"):
        solve_timeseries(net, np.ones((5, 3)))
    with pytest.raises(ConfigError, match="load_p_kw"):
        solve_timeseries(net, np.ones(len(net.load)))
    with pytest.raises(ConfigError, match=r"load_q_kvar.*4 time steps"):
        solve_timeseries(net, p, np.ones((4, len(net.load))))
    bad = p.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ConfigError, match=re.escape("step 3, column 2")):
        solve_timeseries(net, p, sgen_p_kw=None, load_q_kvar=bad)
    for kwargs in ({"max_iter": 0}, {"tol_pu": -1.0}, {"chunk_size": 0}, {"threads": 0}):
        with pytest.raises(ConfigError):
            solve_timeseries(net, p, **kwargs)
    with pytest.raises(ConfigError, match="auto, dense, sparse"):
        compile_network(net, method="qr")  # type: ignore[arg-type]


def test_net_is_not_modified() -> None:
    net = radial_1247_net()
    before = copy.deepcopy(net)
    solve_timeseries(net, _random_series(net, 3, seed=0).load_p_kw)
    for table in ("bus", "load", "sgen", "line", "trafo", "ext_grid", "res_bus"):
        assert net[table].equals(before[table]), table


def test_chunks_threads_and_methods_agree() -> None:
    net = feature_net()
    series = _random_series(net, 50, seed=11)
    base = _solve(net, series)
    sparse = compile_network(net, method="sparse")
    assert sparse.method == "sparse"
    block = compile_network(net, method="block")
    assert block.method == "block"
    dense = compile_network(net, method="dense")
    assert dense.method == "dense"
    sweep = compile_network(net, method="sweep")
    assert sweep.method == "sweep" and sweep.sweep is not None
    variants = [
        _solve(net, series, chunk_size=7),
        _solve(net, series, chunk_size=8, threads=2),
        _solve(sparse, series),
        _solve(block, series, chunk_size=9),
        _solve(dense, series, chunk_size=5),
        _solve(sweep, series, chunk_size=3, threads=2),
    ]
    for other in variants:
        for field in ("vm_pu", "va_degree", "line_loading_pct", "trafo_loading_pct", "losses_kw"):
            np.testing.assert_allclose(
                getattr(other, field), getattr(base, field), rtol=0, atol=1e-9, err_msg=field
            )
        np.testing.assert_array_equal(other.converged, base.converged)

    parts = list(
        iter_timeseries(
            net, series.load_p_kw, series.load_q_kvar, series.sgen_p_kw, series.sgen_q_kvar,
            chunk_size=16,
        )
    )  # fmt: skip
    assert [s.start for s, _ in parts] == [0, 16, 32, 48]
    vm = np.concatenate([r.vm_pu for _, r in parts])
    np.testing.assert_allclose(vm, base.vm_pu, rtol=0, atol=1e-9)


def test_compiled_network_is_reusable() -> None:
    net = radial_1247_net()
    cn = compile_network(net)
    assert isinstance(cn, CompiledNetwork)
    assert cn.n_load == len(net.load) and cn.n_sgen == len(net.sgen)
    series = _random_series(net, 5, seed=4)
    a = _solve(cn, series)
    b = _solve(net, series)
    np.testing.assert_array_equal(a.vm_pu, b.vm_pu)


def test_flow_result_is_frozen_and_documented() -> None:
    net = radial_1247_net()
    res = solve_timeseries(net, np.tile(net.load.p_mw.to_numpy() * 1e3, (2, 1)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.vm_pu = res.vm_pu  # type: ignore[misc]
    np.testing.assert_array_equal(res.bus_index, net.bus.index)
    np.testing.assert_array_equal(res.line_index, net.line.index)
    np.testing.assert_array_equal(res.trafo_index, net.trafo.index)
    assert res.n_steps == 2
    doc = FlowResult.__doc__ or ""
    for field in dataclasses.fields(FlowResult):
        assert re.search(rf"^    {field.name} : ", doc, re.M), field.name


class _LazyRows:
    """A row-sliceable, not materialised input (like a memmap or a zarr array)."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data
        self.shape = data.shape
        self.calls = 0

    def __getitem__(self, rows: slice) -> np.ndarray:
        self.calls += 1
        return self._data[rows]


def test_iter_timeseries_reads_lazy_inputs_chunk_by_chunk() -> None:
    net = radial_1247_net()
    series = _random_series(net, 40, seed=8)
    base = _solve(net, series)
    lazy = _LazyRows(series.load_p_kw)
    parts = list(iter_timeseries(net, lazy, series.load_q_kvar, chunk_size=10))
    assert lazy.calls == 4
    ref = solve_timeseries(net, series.load_p_kw, series.load_q_kvar)
    np.testing.assert_array_equal(np.concatenate([r.vm_pu for _, r in parts]), ref.vm_pu)
    assert not np.array_equal(ref.vm_pu, base.vm_pu)  # sgen inputs do matter

    bad = series.load_p_kw.copy()
    bad[25, 1] = np.inf
    chunks = iter_timeseries(net, _LazyRows(bad), chunk_size=10)
    next(chunks)
    next(chunks)
    with pytest.raises(ConfigError, match=re.escape("step 25, column 1")):
        next(chunks)


# --------------------------------------------------------------------------------------
# block form of Z_LL, selected outputs, BLAS thread limits
# --------------------------------------------------------------------------------------


def _z_of(cn: CompiledNetwork) -> np.ndarray:
    """Z_LL of a compiled network, whatever its method (identity through its solver)."""
    n_l = cn.nonslack.size
    if cn.zt is not None:
        return np.asarray(cn.zt).T
    eye = np.eye(n_l, dtype=np.complex128)
    return np.asarray(cn.lu.solve(eye)) if cn.blocks is None else cn.blocks.solve(eye)


@pytest.mark.parametrize("code", ["1-LV-semiurb4--0-sw", "1-MV-semiurb--0-sw"])
def test_block_form_of_z_equals_the_inverse(code: str) -> None:
    """Blocks plus low-rank coupling reproduce Y_LL⁻¹ (auto picked them on these feeders
    before the sweep form; without numba it still does)."""
    net, series = _simbench(code)
    block = compile_network(net, method="block")
    assert block.method == "block"
    assert block.blocks is not None and block.blocks.n_sep >= 1
    assert max(b - a for a, b, _ in block.blocks.blocks) < block.nonslack.size / 3
    z_block = block.blocks.solve(np.eye(block.nonslack.size, dtype=np.complex128))
    z_lu = np.asarray(block.lu.solve(np.eye(block.nonslack.size, dtype=np.complex128)))
    np.testing.assert_allclose(z_block, z_lu, rtol=0, atol=1e-10 * np.abs(z_lu).max())

    steps = slice(20_000, 20_700)  # includes chunk edges and steps of 3 to 5 iterations
    args = (series.load_p_kw[steps], series.load_q_kvar[steps], series.sgen_p_kw[steps])
    a = solve_timeseries(block, *args, chunk_size=256)
    b = solve_timeseries(compile_network(net, method="sparse"), *args)
    for field in ("vm_pu", "va_degree", "line_loading_pct", "trafo_loading_pct", "losses_kw"):
        np.testing.assert_allclose(
            getattr(a, field), getattr(b, field), rtol=0, atol=1e-9, err_msg=field
        )
    np.testing.assert_array_equal(a.iterations, b.iterations)


def test_block_method_on_small_and_meshed_nets() -> None:
    """Forced "block" also works where no separator helps (one block, no coupling)."""
    for net in (feature_net(), radial_1247_net()):
        block = compile_network(net, method="block")
        dense = compile_network(net, method="dense")
        eye = np.eye(block.nonslack.size, dtype=np.complex128)
        np.testing.assert_allclose(_z_of(block), block.lu.solve(eye), rtol=0, atol=1e-9)
        series = _random_series(net, 6, seed=21)
        np.testing.assert_allclose(
            _solve(block, series).vm_pu, _solve(dense, series).vm_pu, rtol=0, atol=1e-10
        )


def test_selected_lines_and_trafos_equal_the_full_columns() -> None:
    net = feature_net()
    series = _random_series(net, 30, seed=12)
    full = _solve(net, series)
    # out of service (6), next to an unsolved bus (7), ordinary (2, 0); trafo 1 parallel
    lines = [int(net.line.index[k]) for k in (6, 7, 2, 0)]
    trafos = [int(net.trafo.index[k]) for k in (3, 1)]
    line_pos = [list(net.line.index).index(i) for i in lines]
    trafo_pos = [list(net.trafo.index).index(i) for i in trafos]
    for sub in (
        _solve(net, series, lines=lines, trafos=trafos),
        _solve(net, series, lines=np.array(lines), trafos=tuple(trafos), threads=2, chunk_size=8),
    ):
        np.testing.assert_array_equal(sub.line_index, lines)
        np.testing.assert_array_equal(sub.trafo_index, trafos)
        np.testing.assert_array_equal(sub.bus_index, full.bus_index)
        for field, pos in (
            ("line_loading_pct", line_pos),
            ("line_i_ka", line_pos),
            ("trafo_loading_pct", trafo_pos),
        ):
            _assert_close(field, getattr(sub, field), getattr(full, field)[:, pos], 1e-12)
        for field in ("vm_pu", "va_degree", "losses_kw", "iterations", "converged"):
            np.testing.assert_array_equal(getattr(sub, field), getattr(full, field), field)

    none = _solve(net, series, lines=[], trafos=[])
    assert none.line_loading_pct.shape == (30, 0) and none.trafo_loading_pct.shape == (30, 0)
    np.testing.assert_array_equal(none.vm_pu, full.vm_pu)

    parts = list(
        iter_timeseries(
            net, series.load_p_kw, series.load_q_kvar, series.sgen_p_kw, series.sgen_q_kvar,
            chunk_size=16, lines=lines[2:], trafos=None,
        )
    )  # fmt: skip
    for _, res in parts:
        np.testing.assert_array_equal(res.line_index, lines[2:])
        np.testing.assert_array_equal(res.trafo_index, net.trafo.index)
    _assert_close(
        "line_loading_pct",
        np.concatenate([r.line_loading_pct for _, r in parts]),
        full.line_loading_pct[:, line_pos[2:]],
        1e-12,
    )


def test_unknown_or_repeated_selection_raises_config_error() -> None:
    net = radial_1247_net()
    p = np.ones((3, len(net.load)))
    with pytest.raises(ConfigError, match=r"lines.*not in net\.line\.index: 999") as info:
        solve_timeseries(net, p, lines=[0, 999])
    assert info.value.field == "lines"
    with pytest.raises(ConfigError, match=r"trafos.*not in net\.trafo\.index: 'x'") as info:
        solve_timeseries(net, p, trafos=["x"])
    assert info.value.field == "trafos"
    with pytest.raises(ConfigError, match="more than once") as info:
        solve_timeseries(net, p, lines=[1, 1])
    assert info.value.field == "lines"
    with pytest.raises(ConfigError, match="1-D") as info:
        solve_timeseries(net, p, lines=3)
    assert info.value.field == "lines"
    with pytest.raises(ConfigError) as info:
        next(iter_timeseries(net, p, trafos=[0.5]))
    assert info.value.field == "trafos"
    with pytest.raises(ConfigError, match=r"buses.*not in net\.bus\.index: 999") as info:
        solve_timeseries(net, p, buses=[0, 999])
    assert info.value.field == "buses"


def test_selected_buses_equal_the_full_columns() -> None:
    """``buses=`` reports those buses' voltages only (unsolved ones stay NaN); the rest of
    the result is unchanged, in solve_timeseries and chunk by chunk."""
    net = feature_net()
    series = _random_series(net, 20, seed=13)
    full = _solve(net, series)
    buses = [int(net.bus.index[k]) for k in (11, 3, 0, 10, 5)]  # isolated, ..., out of service
    pos = [list(net.bus.index).index(b) for b in buses]
    sub = _solve(net, series, buses=buses, lines=[], chunk_size=7)
    np.testing.assert_array_equal(sub.bus_index, buses)
    for field in ("vm_pu", "va_degree"):
        np.testing.assert_array_equal(getattr(sub, field), getattr(full, field)[:, pos], field)
    assert np.isnan(sub.vm_pu[:, [0, 3]]).all()
    for field in ("trafo_loading_pct", "losses_kw", "iterations", "converged"):
        np.testing.assert_array_equal(getattr(sub, field), getattr(full, field), field)
    parts = list(iter_timeseries(net, series.load_p_kw, buses=[], chunk_size=8))
    assert all(r.vm_pu.shape == (s.stop - s.start, 0) for s, r in parts)


def test_blas_thread_limit_is_restored() -> None:
    """BLAS is limited to one thread only while chunks are solved, also with threads=2."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    net = radial_1247_net()
    series = _random_series(net, 64, seed=9)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]
        for threads in (1, 2):
            _solve(net, series, threads=threads, chunk_size=4)
            for _ in iter_timeseries(net, series.load_p_kw, chunk_size=8, threads=threads):
                pass
            after = [
                i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
            ]
            assert after == before


# --------------------------------------------------------------------------------------
# package layout (issue 15)
# --------------------------------------------------------------------------------------


def test_public_names_at_every_path() -> None:
    """The entry points are the same objects at the package, the façade and their homes."""
    import gridplan.powerflow as package
    from gridplan.powerflow import model, results, solve, solver

    for name in package.__all__:
        assert getattr(package, name) is getattr(solver, name), name
    assert solver.compile_network is model.compile_network
    assert solver.CompiledNetwork is model.CompiledNetwork
    assert solver.UnsupportedElementError is model.UnsupportedElementError
    assert solver.FlowResult is results.FlowResult
    assert solver.solve_timeseries is solve.solve_timeseries
    assert solver.iter_timeseries is solve.iter_timeseries


# --------------------------------------------------------------------------------------
# the sweep form: LU factors in elimination order (issue 21)
# --------------------------------------------------------------------------------------


def _meshed_two_source_net() -> Any:
    """radial_1247_net with a primary loop, a secondary loop and a second ext_grid feeding
    the end of the primary through its own line."""
    net = radial_1247_net()
    by_name = {str(n): int(i) for i, n in net.bus.name.items()}
    mv_line = {"r_ohm_per_km": 0.306, "x_ohm_per_km": 0.381, "c_nf_per_km": 9.0, "max_i_ka": 0.2}
    pp.create_line_from_parameters(
        net, by_name["pole 1"], by_name["pole 4"], length_km=1.5, **mv_line
    )
    pp.create_line_from_parameters(
        net, by_name["house 2.0"], by_name["house 2.2"], length_km=0.05, r_ohm_per_km=0.25,
        x_ohm_per_km=0.08, c_nf_per_km=0.0, max_i_ka=0.3,
    )  # fmt: skip
    far = pp.create_bus(net, 12.47, name="second substation")
    pp.create_ext_grid(net, far, vm_pu=1.02, va_degree=-0.5)
    pp.create_line_from_parameters(net, far, by_name["pole 5"], length_km=2.0, **mv_line)
    return net


def _y_ll(cn: CompiledNetwork) -> np.ndarray:
    """Y_LL (dense) of the compiled network's non-slack nodes, in their order."""
    f = cn.sweep
    assert f is not None
    n = f.inv_diag.size
    low = np.eye(n, dtype=np.complex128)
    up = np.diag(1.0 / f.inv_diag)
    for j in range(n):
        low[j, f.l_idx[f.l_ptr[j] : f.l_ptr[j + 1]]] = f.l_val[f.l_ptr[j] : f.l_ptr[j + 1]]
        up[j, f.u_idx[f.u_ptr[j] : f.u_ptr[j + 1]]] = f.u_val[f.u_ptr[j] : f.u_ptr[j + 1]]
    return low @ up


def test_sweep_factors_are_exact_and_without_fill_on_a_radial_feeder() -> None:
    """L·U is Y_LL; on a radial feeder each node has one parent (no fill), and the numpy
    substitutions give the no-load voltages."""
    from gridplan.powerflow.sweep import substitute

    for net, radial in ((radial_1247_net(), True), (_meshed_two_source_net(), False)):
        cn = compile_network(net, method="sweep")
        assert cn.method == "sweep" and cn.sweep is not None
        n = cn.nonslack.size
        eye = np.eye(n, dtype=np.complex128)
        y_ll = np.linalg.inv(np.asarray(cn.lu.solve(eye)))
        np.testing.assert_allclose(_y_ll(cn), y_ll, rtol=0, atol=1e-9 * np.abs(y_ll).max())
        np.testing.assert_allclose(substitute(cn.sweep, cn.sweep.rhs), cn.w, rtol=0, atol=1e-12)
        if radial:
            assert cn.sweep.l_idx.size <= n and np.diff(cn.sweep.u_ptr).max() <= 1
        else:
            assert cn.sweep.l_idx.size > n - 1  # the loops fill in


def test_sweep_on_a_meshed_two_source_net_matches_runpp_and_dense() -> None:
    net = _meshed_two_source_net()
    series = _random_series(net, 40, seed=17)
    sweep = _solve(compile_network(net, method="sweep"), series)
    dense = _solve(compile_network(net, method="dense"), series)
    for field in ("vm_pu", "va_degree", "line_loading_pct", "trafo_loading_pct", "losses_kw"):
        np.testing.assert_allclose(
            getattr(sweep, field), getattr(dense, field), rtol=0, atol=1e-9, err_msg=field
        )
    np.testing.assert_array_equal(sweep.iterations, dense.iterations)
    _assert_matches_runpp(net, series, sweep, np.arange(0, 40, 4))


def test_sweep_falls_back_to_pivoted_lu(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the factor in elimination order is not accurate (a tiny pivot), the compile
    keeps SuperLU's pivoted factor (method "sparse"), with the same results."""
    from gridplan.powerflow import zll

    net = radial_1247_net()
    series = _random_series(net, 10, seed=4)
    ref = _solve(compile_network(net, method="sweep"), series)
    monkeypatch.setattr(zll, "sweep_factor", lambda y, rhs: None)
    cn = compile_network(net, method="sweep")
    assert cn.method == "sparse" and cn.sweep is None
    np.testing.assert_allclose(_solve(cn, series).vm_pu, ref.vm_pu, rtol=0, atol=1e-10)


def test_auto_picks_the_sweep_with_numba() -> None:
    from gridplan.powerflow import kernels

    cn = compile_network(radial_1247_net())
    assert cn.method == ("sweep" if kernels.AVAILABLE else "block")


def test_sweep_lanes_and_chunk_edges() -> None:
    """Steps enter the kernel's 4 lanes as others finish: any chunk size, any number of
    steps (1 to 9, not multiples of 4), and one iteration limit give the same per-step
    answers; a lane whose step diverges does not disturb the others."""
    net = radial_1247_net()
    cn = compile_network(net, method="sweep")
    series = _random_series(net, 9, seed=6)
    series.load_p_kw[4] *= 1e4  # no solution: flagged, NaN
    full = _solve(cn, series)
    assert not full.converged[4] and np.isnan(full.vm_pu[4]).all()
    assert full.converged[np.arange(9) != 4].all()
    for chunk in (1, 2, 3, 5, 9):
        part = _solve(cn, series, chunk_size=chunk)
        np.testing.assert_array_equal(part.iterations, full.iterations)
        np.testing.assert_allclose(part.vm_pu, full.vm_pu, rtol=0, atol=0)
    one = _solve(cn, series, max_iter=1)
    assert not one.converged.any() and (one.iterations == 1).all()


def _simbench_rows(net: Any, rows: np.ndarray) -> Series:
    """Absolute SimBench profiles [kW, kvar] of the given steps only, from the relative
    profiles (what ``simbench.get_absolute_values`` computes for the whole year, which
    takes ~8 GB on the 9,099-bus grid)."""
    prof = net.profiles

    def absolute(table: str, frame: Any, suffix: str, col: str) -> np.ndarray:
        names = (net[table]["profile"].astype(str) + suffix).to_numpy()
        rel = frame.iloc[rows][list(dict.fromkeys(names))]
        return rel[names].to_numpy(float) * net[table][col].to_numpy(float) * 1e3

    return Series(
        load_p_kw=absolute("load", prof["load"], "_pload", "p_mw"),
        load_q_kvar=absolute("load", prof["load"], "_qload", "q_mvar"),
        sgen_p_kw=absolute("sgen", prof["renewables"], "", "p_mw"),
        sgen_q_kvar=np.broadcast_to(net.sgen.q_mvar.to_numpy() * 1e3, (rows.size, len(net.sgen))),
    )


def test_simbench_rows_equal_get_absolute_values() -> None:
    net, series = _simbench("1-MV-semiurb--0-sw")
    rows = np.array([0, 7, 20_000, 35_135])
    part = _simbench_rows(net, rows)
    for field in ("load_p_kw", "load_q_kvar", "sgen_p_kw"):
        np.testing.assert_allclose(getattr(part, field), getattr(series, field)[rows], rtol=1e-12)


@pytest.mark.slow
def test_mvlv_9099_bus_grid_matches_runpp() -> None:
    """The 9,099-bus SimBench MV/LV grid of issue 21 (sweep form, 2,048 steps of its own
    profiles around the peak, 12 of them checked against runpp)."""
    simbench = pytest.importorskip("simbench")
    net = simbench.get_simbench_net("1-MVLV-semiurb-all-0-sw")
    net.load["scaling"] = 1.0
    net.sgen["scaling"] = 1.0
    rows = np.arange(20_000, 22_048)
    series = _simbench_rows(net, rows)
    cn = compile_network(net)
    res = _solve(cn, series)
    assert res.converged.all()
    _assert_matches_runpp(net, series, res, _select_steps(series, 12))

"""The compiled (numba) kernels of the power flow give the answers of their numpy twins.

The accuracy tests in ``test_powerflow.py`` compare the default path (numba when it is
installed, as in CI) with ``pandapower.runpp``; these tests tie the numpy path to it:
kernel by kernel on awkward inputs, and whole solves on SimBench and feature nets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_powerflow import _random_series, _simbench, _solve, feature_net, radial_1247_net

from gridplan.powerflow import kernels as _kernels
from gridplan.powerflow.solver import FlowResult, compile_network

needs_numba = pytest.mark.skipif(not _kernels.AVAILABLE, reason="numba is not installed")

# Both paths do the same arithmetic up to rounding; branch currents are differences of
# nearly equal end voltages times large admittances, so their rounding shows ~1e-10.
ATOL = {
    "vm_pu": 1e-12,
    "va_degree": 1e-10,
    "line_loading_pct": 1e-8,
    "line_i_ka": 1e-10,
    "trafo_loading_pct": 1e-8,
    "losses_kw": 1e-8,
}


def _both(fn: Any) -> tuple[Any, Any]:
    """``fn()`` with the compiled kernels, then with their numpy twins."""
    compiled = fn()
    with _kernels.numba_disabled():
        assert not _kernels.enabled()
        twin = fn()
    assert _kernels.enabled()
    return compiled, twin


def _voltages(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    return (1 + 0.05 * rng.standard_normal((m, n))) + 0.05j * rng.standard_normal((m, n))


@needs_numba
def test_injected_currents_match_numpy_on_views() -> None:
    rng = np.random.default_rng(1)
    big_v = _voltages(rng, 40, 13)
    sc = rng.standard_normal((37, 12)) + 1j * rng.standard_normal((37, 12))
    v = big_v[3:, :12]  # a non-contiguous view, as for the dense method's work array

    def run() -> np.ndarray:
        out = np.empty((40, 13), dtype=np.complex128)[:37, :12]
        _kernels.injected_currents(sc, v, out)
        return out.copy()

    a, b = _both(run)
    np.testing.assert_allclose(a, sc / np.conj(v), rtol=1e-14, atol=0)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


@needs_numba
def test_max_change_matches_numpy_and_never_hides_nan_or_inf() -> None:
    rng = np.random.default_rng(2)
    v = _voltages(rng, 30, 9)
    v_new = v + 1e-4 * (rng.standard_normal((30, 9)) + 1j * rng.standard_normal((30, 9)))
    v_new[4, 3] = np.nan
    v_new[7, 0] = complex(np.inf, 0)
    v_new[9, 8] = complex(0, -np.inf)
    flat = np.broadcast_to(v[0], v.shape)  # the first iteration's start is a broadcast

    for start in (v, flat):
        a, b = _both(lambda s=start: _kernels.max_change(v_new, s, np.empty(30)).copy())
        expect = np.abs(v_new - start).max(axis=1)
        bad = [4, 7, 9]
        assert np.isposinf(a[bad]).all() and np.isposinf(b[bad]).all()
        good = np.setdiff1d(np.arange(30), bad)
        np.testing.assert_allclose(a[good], expect[good], rtol=1e-14, atol=0)
        np.testing.assert_allclose(b[good], expect[good], rtol=1e-14, atol=0)


@needs_numba
@pytest.mark.parametrize("power", [False, True])
@pytest.mark.parametrize("subset", [False, True])
def test_branch_max_matches_numpy(power: bool, subset: bool) -> None:
    rng = np.random.default_rng(3)
    v = _voltages(rng, 25, 8)
    k = 6
    f = rng.integers(0, 8, k)
    t = rng.integers(0, 8, k)
    y = rng.standard_normal((4, k)) + 1j * rng.standard_normal((4, k))
    scale_f, scale_t = rng.uniform(0.5, 2, k), rng.uniform(0.5, 2, k)
    width = k + 3 if subset else k
    cols = np.sort(rng.choice(width, k, replace=False)) if subset else np.arange(k)

    def run() -> np.ndarray:
        out = np.full((25, width), -1.0)
        _kernels.branch_max(v, f, t, y, scale_f, scale_t, power, cols, out)
        return out

    a, b = _both(run)
    i_f = v[:, f] * y[0] + v[:, t] * y[1]
    i_t = v[:, f] * y[2] + v[:, t] * y[3]
    if power:
        i_f, i_t = v[:, f] * i_f, v[:, t] * i_t
    expect = np.full((25, width), -1.0)
    expect[:, cols] = np.maximum(np.abs(i_f) * scale_f, np.abs(i_t) * scale_t)
    np.testing.assert_allclose(a, expect, rtol=1e-14, atol=0)
    np.testing.assert_allclose(b, expect, rtol=1e-14, atol=0)


def _assert_same(a: FlowResult, b: FlowResult) -> None:
    for field, atol in ATOL.items():
        np.testing.assert_allclose(
            getattr(a, field), getattr(b, field), rtol=0, atol=atol, err_msg=field
        )
    np.testing.assert_array_equal(a.converged, b.converged)
    np.testing.assert_array_equal(a.iterations, b.iterations)


@needs_numba
@pytest.mark.parametrize("code", ["1-LV-semiurb4--0-sw", "1-MV-semiurb--0-sw"])
def test_simbench_year_same_with_and_without_numba(code: str) -> None:
    net, series = _simbench(code)
    cn = compile_network(net)
    a, b = _both(lambda: _solve(cn, series, threads=2))
    assert a.converged.all()
    _assert_same(a, b)


@needs_numba
@pytest.mark.parametrize("trafo_loading", ["current", "power"])
@pytest.mark.parametrize("method", ["dense", "sparse", "block", "sweep"])
def test_feature_net_same_with_and_without_numba(trafo_loading: str, method: str) -> None:
    net = feature_net()
    if trafo_loading == "power":
        net.user_pf_options = {"trafo_loading": "power"}
    cn = compile_network(net, method=method)
    series = _random_series(net, 40, seed=8, spread=2.0)
    a, b = _both(lambda: _solve(cn, series, chunk_size=16))
    _assert_same(a, b)


@needs_numba
def test_unconverged_steps_same_with_and_without_numba() -> None:
    """An absurd step is flagged (NaN results) by both paths alike."""
    net = radial_1247_net()
    series = _random_series(net, 6, seed=2)
    series.load_p_kw[2] *= 1e4  # voltage collapse: no solution
    a, b = _both(lambda: _solve(net, series))
    assert not a.converged[2] and a.converged[[0, 1, 3, 4, 5]].all()
    _assert_same(a, b)


@needs_numba
@pytest.mark.parametrize("order", ["C", "F"])
def test_scatter_add_same_with_and_without_numba(order: str) -> None:
    """Repeated targets accumulate; row- and column-major inputs give the same sums."""
    rng = np.random.default_rng(3)
    x = np.asarray(rng.standard_normal((13, 9)), order=order)
    src = np.array([0, 3, 3, 8, 5, 1])
    tgt = np.array([2, 2, 0, 7, 2, 4])
    base = rng.standard_normal((13, 8))

    def run() -> np.ndarray:
        out = base.copy()
        _kernels.scatter_add(x, src, tgt, -0.5, out)
        return out

    a, b = _both(run)
    expected = base.copy()
    for s, t in zip(src, tgt, strict=True):
        expected[:, t] += -0.5 * x[:, s]
    np.testing.assert_allclose(a, expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(b, expected, rtol=0, atol=1e-14)

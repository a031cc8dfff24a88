"""Profiles read row by row (issue 21): :class:`ProfileMatrix` gives the values of the
dense arrays it replaces, SimBench feeders keep their year as factors, and a study on such
a feeder never expands (time × every load)."""

from __future__ import annotations

import numpy as np
import pytest

from gridplan.core.config import validate
from gridplan.core.errors import ConfigError
from gridplan.ev.dispatch import dispatch
from gridplan.ev.fleet import sample_fleet
from gridplan.grid.feeders import FeederSpec, build_feeder, load_feeder
from gridplan.grid.profiles import ProfileMatrix
from gridplan.powerflow import iter_timeseries, solve_timeseries
from gridplan.study import run
from gridplan.study.config import StudyConfig


def _factored(rng: np.random.Generator, n_time: int = 50, k: int = 4, n: int = 9):
    relative = rng.uniform(0.0, 1.0, (n_time, k))
    column = rng.integers(0, k, n)
    scale = rng.uniform(0.5, 5.0, n)
    matrix = ProfileMatrix.factored(relative, column, scale, unit=1e3)
    dense = relative[:, column] * scale * 1e3
    return matrix, dense


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_match_the_dense_array(seed):
    matrix, dense = _factored(np.random.default_rng(seed))
    assert matrix.shape == dense.shape and len(matrix) == dense.shape[0]
    np.testing.assert_array_equal(matrix.to_array(), dense)
    np.testing.assert_array_equal(np.asarray(matrix), dense)
    mask = np.arange(50) % 3 == 0
    for rows in (slice(5, 17), slice(None, None, 4), np.array([3, 1, 40]), mask):
        np.testing.assert_array_equal(matrix[rows], dense[rows])
        np.testing.assert_array_equal(matrix[rows, [2, 0]], dense[rows][:, [2, 0]])
    np.testing.assert_array_equal(matrix[7], dense[7])
    np.testing.assert_array_equal(matrix[:, 4], dense[:, 4])


def test_take_scale_and_added_columns():
    matrix, dense = _factored(np.random.default_rng(3))
    rows = np.arange(10, 40)
    extra = np.random.default_rng(4).normal(size=(rows.size, 3))
    columns = np.array([1, 4, 8])
    grown = matrix.take(rows).scaled(1.07).plus(columns, extra)
    expected = dense[rows] * 1.07
    expected[:, columns] += extra
    np.testing.assert_allclose(grown.to_array(), expected, rtol=1e-15)
    np.testing.assert_allclose(grown[3:9, [8, 0, 4]], expected[3:9][:, [8, 0, 4]], rtol=1e-15)
    weights = np.random.default_rng(5).uniform(size=(9, 2))
    np.testing.assert_allclose(grown.matmul(weights), expected @ weights, rtol=1e-12)
    np.testing.assert_allclose(grown.total(), expected.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(grown.sum(axis=0), expected.sum(axis=0), rtol=1e-12)
    assert grown.sum() == pytest.approx(expected.sum(), rel=1e-12)
    with pytest.raises(ValueError, match="before adding"):
        grown.scaled(2.0)
    with pytest.raises(ValueError, match="rows"):
        matrix.plus(columns, extra)  # 30 rows added to a 50-row profile


def test_dense_profile_is_the_array_itself():
    values = np.random.default_rng(6).normal(size=(20, 5))
    matrix = ProfileMatrix.of(values)
    assert matrix.is_dense and ProfileMatrix.of(matrix) is matrix
    np.testing.assert_array_equal(matrix.scaled(1.3)[2:6], values[2:6] * 1.3)
    np.testing.assert_allclose(matrix.matmul(np.eye(5), chunk=3), values, rtol=1e-15)


@pytest.mark.parametrize(
    "name", ["lv-semiurban", pytest.param("mv-semiurban", marks=pytest.mark.slow)]
)
def test_simbench_feeders_keep_factors_equal_to_simbench(name):
    from simbench import get_absolute_profiles_from_relative_profiles as absolute

    feeder = load_feeder(name)
    assert not feeder.load_p.is_dense
    assert feeder.load_p.nbytes < 0.5 * feeder.load_p.shape[0] * feeder.load_p.shape[1] * 8
    net = feeder.net  # SimBench's own net, with its relative profiles
    for (table, column), mine in {
        ("load", "p_mw"): feeder.load_p_kw,
        ("load", "q_mvar"): feeder.load_q_kvar,
        ("sgen", "p_mw"): feeder.sgen_p_kw,
    }.items():
        theirs = absolute(net, table, column).reindex(columns=net[table].index).to_numpy() * 1e3
        np.testing.assert_array_equal(mine, theirs)


def test_iter_timeseries_reads_a_profile_matrix(lv_feeder):
    rows = slice(1000, 1700)
    load_p = lv_feeder.load_p.take(rows).scaled(1.2)
    chunks = list(
        iter_timeseries(
            lv_feeder.net,
            load_p,
            load_q_kvar=lv_feeder.load_q.take(rows).scaled(1.2),
            sgen_p_kw=lv_feeder.sgen_p.take(rows),
            chunk_size=256,
        )
    )
    assert len(chunks) == 3
    whole = solve_timeseries(
        lv_feeder.net,
        lv_feeder.load_p_kw[rows] * 1.2,
        load_q_kvar=lv_feeder.load_q_kvar[rows] * 1.2,
        sgen_p_kw=lv_feeder.sgen_p_kw[rows],
    )
    vm = np.concatenate([flow.vm_pu for _, flow in chunks])
    np.testing.assert_allclose(vm, whole.vm_pu, atol=1e-12)


def test_dispatch_keeps_only_the_loads_with_evs(lv_feeder):
    config = validate(StudyConfig, {"name": "t", "feeder": "lv-semiurban", "year": 2030})
    period = lv_feeder.time_index[:672]
    fleet = sample_fleet(lv_feeder, config.fleet, 2030, np.random.default_rng(2), period=period)
    assert 0 < np.unique(fleet.load_pos).size < len(lv_feeder.net.load)
    n_loads = len(lv_feeder.net.load)
    full = dispatch(fleet, period, "unmanaged", n_loads=n_loads)
    columns = np.unique(fleet.load_pos)
    compact = dispatch(fleet, period, "unmanaged", n_loads=n_loads, load_columns=columns)
    assert compact.load_power_kw.shape == (len(period), columns.size)
    np.testing.assert_array_equal(compact.power_by_load_kw, full.power_by_load_kw)
    with pytest.raises(ConfigError, match="every EV"):
        dispatch(fleet, period, "unmanaged", n_loads=n_loads, load_columns=columns[1:])
    with pytest.raises(ConfigError, match="sorted"):
        dispatch(fleet, period, "unmanaged", n_loads=n_loads, load_columns=columns[::-1])


def test_study_on_a_simbench_feeder_never_expands_the_profiles(monkeypatch):
    """The study path reads profiles row by row: expanding a whole (time × load) profile
    fails here. The study still runs every case, and its EV power is kept per load with
    EVs only."""

    def refuse(self):
        raise AssertionError("a study expanded a whole profile")

    monkeypatch.setattr(ProfileMatrix, "to_array", refuse)
    config = validate(
        StudyConfig,
        {
            "name": "rows",
            "feeder": "lv-semiurban",
            "year": 2035,
            "base_year": 2026,
            "seed": 3,
            "period": {"kind": "range", "start": "2016-01-10", "end": "2016-01-24"},
            "horizon": {"start": 2035, "end": 2035, "draws": 2, "screening": False},
            "targeting": {"enabled": False},
        },
    )
    result = run(config)
    assert set(result.loading_pct) >= {"base", "charging", "v2g"}
    assert all(d.load_columns is not None for d in result.ev_dispatch.values())


def test_min_kv_monitors_the_mv_lines_only(tmp_path):
    body = """
name = "mvlv"
description = "x"
[network]
source = "simbench"
code = "1-MVLV-urban-6.305-0-sw"
[profiles]
source = "simbench"
[[assets]]
kind = "line"
min_kv = 10.0
"""
    spec = validate(FeederSpec, __import__("tomllib").loads(body))
    feeder = build_feeder(spec, tmp_path / "mvlv.toml")
    net = feeder.net
    kv = net.bus.vn_kv.loc[net.line.from_bus].to_numpy()
    mv_lines = set(net.line.index[(kv >= 10.0) & net.line.in_service.to_numpy()])
    assert set(feeder.assets.element) == mv_lines and len(mv_lines) < len(net.line)
    too_high = validate(FeederSpec, __import__("tomllib").loads(body.replace("10.0", "200.0")))
    with pytest.raises(ConfigError, match="min_kv"):
        build_feeder(too_high, tmp_path / "mvlv.toml")


def test_sparse_added_columns_equal_dense():
    import scipy.sparse as sp

    matrix, _ = _factored(np.random.default_rng(7))
    extra = np.random.default_rng(8).normal(size=(50, 3))
    extra[np.random.default_rng(9).uniform(size=extra.shape) < 0.8] = 0.0
    columns = np.array([0, 5, 6])
    as_dense = matrix.plus(columns, extra)
    as_sparse = matrix.plus(columns, sp.csr_array(extra))
    np.testing.assert_array_equal(as_sparse[4:30], as_dense[4:30])
    np.testing.assert_array_equal(as_sparse[[1, 9], [6, 2]], as_dense[[1, 9], [6, 2]])
    np.testing.assert_allclose(as_sparse.sum(axis=0), as_dense.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(as_sparse.total(), as_dense.total(), rtol=1e-12)
    np.testing.assert_array_equal(as_sparse.take(slice(10, 20)).to_array(), as_dense[10:20])
    assert as_sparse.nbytes < as_dense.nbytes


def test_sparse_dispatch_result_reads_as_dense(lv_feeder):
    import dataclasses

    import scipy.sparse as sp

    config = validate(StudyConfig, {"name": "t", "feeder": "lv-semiurban", "year": 2030})
    period = lv_feeder.time_index[:672]
    fleet = sample_fleet(lv_feeder, config.fleet, 2030, np.random.default_rng(2), period=period)
    columns = np.unique(fleet.load_pos)
    n_loads = len(lv_feeder.net.load)
    dense = dispatch(fleet, period, "unmanaged", n_loads=n_loads, load_columns=columns)
    sparse = dataclasses.replace(dense, load_power_kw=sp.csr_array(dense.load_power_kw))
    np.testing.assert_array_equal(sparse.power_by_load_kw, dense.power_by_load_kw)
    np.testing.assert_allclose(sparse.total_power_kw, dense.power_by_load_kw.sum(axis=1))
    some = np.zeros(n_loads, dtype=bool)
    some[columns[::2]] = True
    some[0] = True
    np.testing.assert_array_equal(
        sparse.loads_power_kw(some).sum(axis=1), dense.power_by_load_kw[:, some].sum(axis=1)
    )


@pytest.mark.parametrize("strategy", ["unmanaged", "v2g_peak_shave", "smart"])
def test_sparse_recording_equals_dense(lv_feeder, strategy):
    """``sparse_loads`` records the same per-load power (fast path and step loop)."""
    from gridplan.ev.context import DispatchContext

    config = validate(StudyConfig, {"name": "t", "feeder": "lv-semiurban", "year": 2035})
    period = lv_feeder.time_index[:2200]  # more rows than a LoadRows block
    fleet = sample_fleet(lv_feeder, config.fleet, 2035, np.random.default_rng(4), period=period)
    context = DispatchContext.from_feeder(
        lv_feeder, fleet, lv_feeder.load_p.take(slice(0, 2200)), period
    )
    columns = np.unique(fleet.load_pos)
    kwargs = {"context": context, "load_columns": columns, "dtype": np.float32}
    dense = dispatch(fleet, period, strategy, **kwargs)
    sparse = dispatch(fleet, period, strategy, sparse_loads=True, **kwargs)
    assert not isinstance(sparse.load_power_kw, np.ndarray)
    np.testing.assert_array_equal(sparse.power_by_load_kw, dense.power_by_load_kw)


def test_non_finite_simbench_profile_is_a_clear_error(lv_feeder):
    import copy

    from gridplan.grid.feeders import _simbench_profile

    net = copy.deepcopy(lv_feeder.net)
    net.load.loc[net.load.index[0], "p_mw"] = np.nan
    with pytest.raises(ConfigError, match="not all finite"):
        _simbench_profile(net, "load", "p_mw", None)

"""Property: the config loaders accept a config or raise gridplan's own error -- never
anything else (hypothesis generates random TOML-like documents)."""

from __future__ import annotations

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gridplan.core.errors import GridplanError
from gridplan.grid.feeders import read_feeder_spec
from gridplan.study import load_study_config

KEYS = st.sampled_from(
    [
        "name", "feeder", "year", "base_year", "seed", "period", "horizon", "fleet",
        "dispatch", "valuation", "program", "criteria", "load_growth", "kind", "start", "end",
        "draws", "confidence", "evs_per_household", "adoption", "zones", "vehicle_mix",
        "v2g_enrolled_share", "charging", "v2g", "events", "rate", "network", "source", "code",
        "assets", "upgrades", "catalog_id", "limit_pct", "households", "rule", "sede", "x",
    ]
)  # fmt: skip
SCALARS = (
    st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.booleans()
    | st.sampled_from(["us-residential", "peak_week", "unmanaged", "v2g_event", "simbench"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=8)


def _write(path, document) -> bool:
    try:
        text = tomli_w.dumps(document)
    except (TypeError, ValueError):
        return False  # not representable as TOML (e.g. mixed-type arrays in old tomli-w)
    path.write_text(text, encoding="utf-8")
    return True


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=DOCUMENTS)
def test_study_loader_accepts_or_raises_its_own_error(tmp_path, document):
    path = tmp_path / "s.toml"
    if not _write(path, document):
        return
    try:
        load_study_config(path)
    except GridplanError:
        pass


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=DOCUMENTS)
def test_feeder_spec_reader_accepts_or_raises_its_own_error(tmp_path, document):
    path = tmp_path / "f.toml"
    if not _write(path, document):
        return
    try:
        read_feeder_spec(path)
    except GridplanError:
        pass


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200))
def test_random_bytes_give_gridplan_errors(tmp_path, data):
    path = tmp_path / "b.toml"
    path.write_bytes(data)
    for loader in (load_study_config, read_feeder_spec):
        try:
            loader(path)
        except GridplanError:
            pass


BATCH_KEYS = st.sampled_from(
    [
        "name", "feeders", "draws", "seed", "grid", "scenarios", "study", "execution",
        "workers", "max_units", "fleet.evs_per_household", "fleet", "period", "kind",
        "common_random_numbers", "output_dir", "x",
    ]
)  # fmt: skip
BATCH_VALUES = st.recursive(
    SCALARS | st.sampled_from(["lv-rural", "*", "screen", "fleet.v2g_enrolled_share"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(BATCH_KEYS, inner, max_size=4),
    max_leaves=12,
)
BATCH_DOCUMENTS = st.fixed_dictionaries(
    {"name": st.sampled_from(["b", "x y", ""]), "feeders": st.sampled_from(["lv-rural", ["*"]])}
) | st.dictionaries(BATCH_KEYS, BATCH_VALUES, max_size=8)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=BATCH_DOCUMENTS, extra=st.dictionaries(BATCH_KEYS, BATCH_VALUES, max_size=4))
@example(document={"name": "b", "feeders": "lv-rural"}, extra={"scenarios": [5]})
@example(document={"name": "b", "feeders": "lv-rural"}, extra={"grid": {"fleet": {"x": 1}}})
@example(document={"name": "b", "feeders": "lv-rural"}, extra={"grid": {"seed": [[1]]}})
def test_batch_planner_accepts_or_raises_its_own_error(tmp_path, document, extra):
    from gridplan.batch import plan_batch

    path = tmp_path / "b.toml"
    if not _write(path, {**document, **extra}):
        return
    try:
        plan_batch(path)
    except GridplanError:
        pass


@pytest.mark.slow
@settings(
    max_examples=2000,
    derandomize=False,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=DOCUMENTS, batch=BATCH_DOCUMENTS)
def test_explore_every_loader(tmp_path, document, batch):
    """Exploration (slow run, fresh random examples each time): a failure found here becomes
    an explicit @example of the deterministic tests above."""
    from gridplan.batch import plan_batch

    for name, doc, loader in (
        ("s.toml", document, load_study_config),
        ("f.toml", document, read_feeder_spec),
        ("b.toml", batch, plan_batch),
    ):
        path = tmp_path / name
        if _write(path, doc):
            try:
                loader(path)
            except GridplanError:
                pass

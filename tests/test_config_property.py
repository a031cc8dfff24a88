"""Property: the config loaders accept a config or raise gridplan's own error -- never
anything else (hypothesis generates random TOML-like documents)."""

from __future__ import annotations

import tomli_w
from hypothesis import HealthCheck, given, settings
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

"""Tests of gridplan.grid.safe_json: pandapower JSON files never run code.

The crafted files in ``tests/data/bad_json/`` (see the README there) and the sentinel modules
generated in ``tmp_path`` try every route by which pandapower's JSON object hook imports
modules, returns callables or calls constructors; each must be refused with a ConfigError that
names the file and the JSON path, before anything is imported or called.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import os
import sys
import textwrap
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pandapower as pp
    import pandapower.networks as pn

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pandapower.auxiliary import pandapowerNet
from pandapower.toolbox import nets_equal

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.grid.safe_json import (
    ALLOWED_TYPES,
    check_net,
    load_pandapower_json,
    save_pandapower_json,
    validate_pandapower_json,
)

BAD_JSON = Path(__file__).parent / "data" / "bad_json"
NET_TAG = {"_module": "pandapower.auxiliary", "_class": "pandapowerNet"}


# ---------------------------------------------------------------------------------------------
# helpers


def tiny_net(*, ext_grid: bool = True) -> pandapowerNet:
    """Three buses in a line, an external grid at bus 0, one load and one PV sgen."""
    net = pp.create_empty_network(name="tiny")
    buses = [pp.create_bus(net, vn_kv=0.4, name=f"b{i}") for i in range(3)]
    if ext_grid:
        pp.create_ext_grid(net, buses[0])
    for a, b in itertools.pairwise(buses):
        pp.create_line(net, a, b, length_km=0.1, std_type="NAYY 4x50 SE")
    pp.create_load(net, buses[2], p_mw=0.01, q_mvar=0.002)
    pp.create_sgen(net, buses[1], p_mw=0.005, q_mvar=-0.001)
    return net


def net_tree(**entries: Any) -> dict[str, Any]:
    """A top-level pandapower net entry whose ``_object`` holds ``entries``."""
    return {**NET_TAG, "_object": {"name": "crafted", **entries}}


def frame_entry(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A DataFrame entry as pandapower writes it (orient split, JSON text in ``_object``)."""
    table = {"columns": columns, "index": list(range(len(rows))), "data": rows}
    return {
        "_module": "pandas.core.frame",
        "_class": "DataFrame",
        "_object": json.dumps(table),
        "orient": "split",
        "is_multiindex": False,
        "is_multicolumn": False,
    }


def write_tree(path: Path, tree: Any) -> Path:
    path.write_text(json.dumps(tree), encoding="utf-8")
    return path


def assert_same(a: Any, b: Any, where: str) -> None:
    """Strict equality of decoded values (DataFrames with dtypes, dicts recursively)."""
    assert type(a) is type(b), where
    if isinstance(b, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_dtype=True, obj=where)
    elif isinstance(b, pd.Series):
        pd.testing.assert_series_equal(a, b, obj=where)
    elif isinstance(b, pd.Index):
        pd.testing.assert_index_equal(a, b, obj=where)
    elif isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(b, nx.Graph):
        assert nx.utils.graphs_equal(a, b), where
    elif isinstance(b, dict):
        assert set(a) == set(b), where
        for key in b:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(b, float) and math.isnan(b):
        assert math.isnan(a), where
    else:
        assert a == b, where


def assert_same_net(loaded: pandapowerNet, reference: pandapowerNet) -> None:
    """Table-by-table equality (dtypes included), plus pandapower's own ``nets_equal``."""
    assert nets_equal(loaded, reference, check_only_results=False)
    assert set(loaded.keys()) == set(reference.keys())
    for key in reference.keys():
        assert_same(loaded[key], reference[key], key)


@pytest.fixture(scope="module")
def legit_nets() -> dict[str, pandapowerNet]:
    """Nets as planners get them: pandapower examples, a SimBench net, and exotic entries."""
    import shapely

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import geopandas as gpd
        import simbench

        nets = {
            "example_simple": pn.example_simple(),
            "mv_oberrhein": pn.mv_oberrhein(),  # bus/line geodata
            "simbench_1-LV-semiurb4--0-sw": simbench.get_simbench_net("1-LV-semiurb4--0-sw"),
            "cigre_mv_der": pn.create_cigre_network_mv(with_der="all"),
        }
        with_results = pn.example_multivoltage()
        pp.runpp(with_results)  # res_* tables
        nets["multivoltage_with_results"] = with_results
        extras = tiny_net()
        pp.create_std_type(
            extras,
            {"c_nf_per_km": 210, "r_ohm_per_km": 0.64, "x_ohm_per_km": 0.08, "max_i_ka": 0.14},
            name="custom cable",
            element="line",
        )
        extras["series"] = pd.Series([1.0, 2.0], index=[3, 4], name="x")
        extras["array"] = np.array([1, 2, 3])
        extras["pair"] = (1, 2)
        extras["ids"] = {1, 2}
        extras["point"] = shapely.Point(1.0, 2.0)
        extras["route"] = shapely.LineString([(0.0, 0.0), (1.0, 1.0)])
        extras["index"] = pd.Index([1, 2, 3])
        extras["scalar"] = np.float64(1.5)
        extras["multi"] = pd.DataFrame(
            {"a": [1, 2]}, index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["x", "y"])
        )
        extras["tz_frame"] = pd.DataFrame(
            {
                "t": pd.date_range("2030-01-01", periods=2, freq="h", tz="Europe/Berlin"),
                "c": pd.Categorical(["a", "b"]),
            }
        )
        graph = nx.MultiGraph()
        graph.add_edge(1, 2)
        extras["graph"] = graph
        extras["gdf"] = gpd.GeoDataFrame(
            {"a": [1]}, geometry=[shapely.Point(0.0, 0.0)], crs="EPSG:4326"
        )
        nets["tiny_with_exotic_entries"] = extras
    return nets


@pytest.fixture
def sentinels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Throwaway modules on ``sys.path`` that record being imported or called.

    ``importer`` (not imported) writes ``flag`` when imported. ``recorder`` (imported here, as
    a module an attacker knows is loaded would be) records calls of its function ``touch``,
    of ``Evil.from_dict`` (a ``JSONSerializableClass``) and of ``EvilIndex.__new__`` (a
    ``pandas.Index`` subclass in a module whose name starts with "pandas", which passes
    pandapower's own prefix check).
    """
    tag = uuid.uuid4().hex[:10]
    flag = tmp_path / "imported.flag"
    importer = f"gp_sentinel_import_{tag}"
    recorder = f"pandas_gp_sentinel_{tag}"
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / f"{importer}.py").write_text(
        f"from pathlib import Path\nPath({str(flag)!r}).write_text('imported')\n"
    )
    (folder / f"{recorder}.py").write_text(
        textwrap.dedent(
            """
            import pandas as pd
            from pandapower.io_utils import JSONSerializableClass

            CALLS = []

            def touch(*args, **kwargs):
                CALLS.append(("touch", args, kwargs))

            class Evil(JSONSerializableClass):
                @classmethod
                def from_dict(cls, d):
                    CALLS.append(("from_dict", d))
                    return None

            class EvilIndex(pd.Index):
                def __new__(cls, *args, **kwargs):
                    CALLS.append(("EvilIndex", args, kwargs))
                    return pd.Index([])
            """
        )
    )
    monkeypatch.syspath_prepend(str(folder))
    module = __import__(recorder)
    yield {"importer": importer, "recorder": recorder, "flag": flag, "calls": module.CALLS}
    sys.modules.pop(recorder, None)
    sys.modules.pop(importer, None)


def assert_refused(path: Path, *fragments: str) -> ConfigError:
    """Load ``path``; assert a ConfigError naming the file and ``fragments``; nothing imported."""
    before = set(sys.modules)
    with pytest.raises(ConfigError) as info:
        load_pandapower_json(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert set(sys.modules) == before, set(sys.modules) - before
    return info.value


# ---------------------------------------------------------------------------------------------
# legitimate nets load exactly as pandapower loads them


@pytest.mark.parametrize(
    "name",
    [
        "example_simple",
        "mv_oberrhein",
        "simbench_1-LV-semiurb4--0-sw",
        "cigre_mv_der",
        "multivoltage_with_results",
        "tiny_with_exotic_entries",
    ],
)
def test_legit_net_round_trip_equals_pandapower(
    legit_nets: dict[str, pandapowerNet], name: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{name}.json"
    pp.to_json(legit_nets[name], str(path))
    loaded = load_pandapower_json(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pp.from_json(str(path))
    assert isinstance(loaded, pandapowerNet)
    assert_same_net(loaded, reference)


def test_save_then_load_round_trip(legit_nets: dict[str, pandapowerNet], tmp_path: Path) -> None:
    net = legit_nets["mv_oberrhein"]
    path = save_pandapower_json(net, tmp_path / "sub" / "oberrhein.json")
    assert path == tmp_path / "sub" / "oberrhein.json"
    assert [p.name for p in path.parent.iterdir()] == ["oberrhein.json"]  # no temp file left
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pp.from_json(str(path))
    loaded = load_pandapower_json(path)
    assert_same_net(loaded, reference)
    assert nets_equal(loaded, net)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + pp.to_json(tiny_net()).encode())
    assert len(load_pandapower_json(path).bus) == 3


def test_allow_list_names_only_data_types() -> None:
    modules = {module for module, _ in ALLOWED_TYPES}
    assert modules == {
        "pandapower.auxiliary",
        "pandas",
        "pandas.core.frame",
        "pandas.core.series",
        "geopandas.geodataframe",
        "numpy",
        "builtins",
        "shapely",
        "networkx",
    }
    classes = {cls for _, cls in ALLOWED_TYPES}
    assert not classes & {"function", "method", "eval", "exec", "type", "system", "Popen"}
    assert {cls for module, cls in ALLOWED_TYPES if module == "builtins"} == {
        "tuple",
        "set",
        "frozenset",
        "complex",
    }
    for module, cls in ALLOWED_TYPES:
        if module == "numpy" and cls != "array":
            assert issubclass(getattr(np, cls), np.generic), cls


# ---------------------------------------------------------------------------------------------
# crafted files: refused before anything is decoded

BAD_FILES = {
    # file: fragments the message must contain (JSON path, entry, reason)
    "function_os_system.json": ["$._object.hook", "_module='os'", "function/method"],
    "function_builtins_eval.json": ["$._object.hook", "_module='builtins'", "function/method"],
    "class_os_system.json": ["$._object.hook", "_class='system'", "allow-list"],
    "builtins_print.json": ["$._object.hook", "_class='print'"],
    "subprocess_popen.json": ["$._object.hook", "_module='subprocess'", "_class='Popen'"],
    "toolbox_function.json": ["_module='pandapower.toolbox'", "_class='function'"],
    "toolbox_class_name.json": ["_module='pandapower.toolbox'", "_class='drop_buses'"],
    "method_reference.json": ["_class='method'"],
    "controller_const_control.json": [
        "$._object.controller._object<json>.data[0][0]",
        "_class='ConstControl'",
        "controllers",
    ],
    "spline_characteristic.json": ["_class='SplineCharacteristic'", "never loaded"],
    "pandas_prefix_index_subclass.json": ["_module='pandas_evil'", "_class='EvilIndex'"],
    "pandapower_prefix_enum.json": ["_module='pandapower_evil'"],
    "nested_in_dataframe_cell.json": ["$._object.line._object<json>.data[1][1]", "'os'"],
    "nested_in_std_types.json": ["$._object.std_types.line.NAYY.payload", "'os'"],
    "nested_in_numpy_array.json": ["$._object.arr._object[1]", "'os'"],
    "nested_in_legacy_net_string.json": [
        "$._object.inner._object<json>._object.line._object<json>.data[0][0]",
        "'os'",
    ],
    "unicode_escaped_tag.json": ["$._object.line._object<json>.data[0][0]", "'os'"],
    "dataframe_reads_local_file.json": ["$._object.bus._object", "must be JSON text"],
    "read_json_extra_kwargs.json": ["$._object.bus.storage_options", "keyword argument"],
    "dtype_not_allowed.json": ["$._object.bus.dtype.name", "'period[D]'"],
    "geojson_type_gadget.json": ["data[0][1]<json>.type", "'__builtins__'"],
    "state_without_object.json": ["$._object.hook", "no '_object'"],
    "half_tag.json": ["$._object.hook", "incomplete"],
}


def test_every_bad_file_is_covered() -> None:
    assert {p.name for p in BAD_JSON.glob("*.json")} == set(BAD_FILES)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_crafted_file_is_refused(name: str) -> None:
    assert_refused(BAD_JSON / name, *BAD_FILES[name])


def test_module_import_is_refused(sentinels: dict[str, Any], tmp_path: Path) -> None:
    importer = sentinels["importer"]
    entry = {"_module": importer, "_class": "anything", "_object": "{}"}
    places = {
        "top": net_tree(hook=entry),
        "cell": net_tree(line=frame_entry(["object"], [[entry]])),
        "tuple": net_tree(pair={"_module": "builtins", "_class": "tuple", "_object": [entry]}),
        "func": net_tree(hook={"_module": importer, "_class": "function", "_object": "x"}),
    }
    for name, tree in places.items():
        path = write_tree(tmp_path / f"{name}.json", tree)
        assert_refused(path, f"_module='{importer}'")
    assert importer not in sys.modules
    assert not sentinels["flag"].exists()


def test_callable_return_is_refused(sentinels: dict[str, Any], tmp_path: Path) -> None:
    recorder = sentinels["recorder"]
    for module, name in [(recorder, "touch"), ("os", "system"), ("builtins", "print")]:
        tree = net_tree(hook={"_module": module, "_class": "function", "_object": name})
        path = write_tree(tmp_path / f"{name}.json", tree)
        assert_refused(path, "$._object.hook", "function/method references are code")
    assert sentinels["calls"] == []


def test_constructor_calls_are_refused(sentinels: dict[str, Any], tmp_path: Path) -> None:
    """The two routes by which pandapower's hook calls a class named in the file."""
    recorder = sentinels["recorder"]
    cases = {
        # JSONSerializableClass -> cls.from_dict(_object)
        "from_dict": {"_module": recorder, "_class": "Evil", "_object": '{"a": 1}'},
        # pandas.Index subclass in a "pandas..." module -> cls(_object, **extra_keys)
        "index": {"_module": recorder, "_class": "EvilIndex", "_object": [1]},
    }
    for name, entry in cases.items():
        path = write_tree(tmp_path / f"{name}.json", net_tree(hook=entry))
        assert_refused(path, "$._object.hook", f"_module='{recorder}'")
    assert sentinels["calls"] == []


def test_controller_net_is_refused_and_not_saved(tmp_path: Path) -> None:
    import pandapower.control as control

    net = tiny_net()
    control.ConstControl(net, "load", "p_mw", [0])
    path = tmp_path / "with_controller.json"
    pp.to_json(net, str(path))
    assert_refused(path, "$._object.controller", "ConstControl", "controllers")
    target = tmp_path / "saved.json"
    target.write_text("old")
    with pytest.raises(ConfigError, match=r"not saved.*ConstControl"):
        save_pandapower_json(net, target)
    assert target.read_text() == "old"  # the existing file is untouched
    assert [p.name for p in tmp_path.iterdir()] == sorted(["with_controller.json", "saved.json"])


def test_crafted_files_do_run_code_in_plain_pandapower(
    sentinels: dict[str, Any], tmp_path: Path
) -> None:
    """Shows the threat is real: pandapower's own decoder imports and calls the sentinels.

    Skipped for any route a future pandapower closes.
    """
    from pandapower.file_io import from_json_string

    def decode(entry: dict[str, Any]) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return from_json_string(json.dumps(net_tree(hook=entry)))["hook"]
            except Exception:
                return None

    decode({"_module": sentinels["importer"], "_class": "x", "_object": "{}"})
    returned = decode({"_module": "os", "_class": "function", "_object": "system"})
    decode({"_module": sentinels["recorder"], "_class": "Evil", "_object": '{"a": 1}'})
    decode({"_module": sentinels["recorder"], "_class": "EvilIndex", "_object": [1]})
    routes = {
        "import": sentinels["flag"].exists(),
        "callable": returned is os.system,
        "from_dict": any(c[0] == "from_dict" for c in sentinels["calls"]),
        "constructor": any(c[0] == "EvilIndex" for c in sentinels["calls"]),
    }
    if not any(routes.values()):
        pytest.skip(f"this pandapower ({pp.__version__}) blocks all four routes")


# ---------------------------------------------------------------------------------------------
# files that are not pandapower JSON


def test_pickle_is_refused_by_suffix_and_by_magic_bytes(
    sentinels: dict[str, Any], tmp_path: Path
) -> None:
    # protocol-2 pickle that imports the sentinel module and calls its function when unpickled
    payload = b"\x80\x02c" + sentinels["importer"].encode() + b"\nPath\n)R."
    for name in ["net.p", "net.pkl", "net.pickle", "net.json"]:
        path = tmp_path / name
        path.write_bytes(payload)
        assert_refused(path, "pickle")
    assert sentinels["importer"] not in sys.modules
    assert not sentinels["flag"].exists()
    with pytest.raises(ConfigError, match="never pickle"):
        save_pandapower_json(tiny_net(), tmp_path / "out.p")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "file is empty"),
        (b"  \n\t ", "file is empty"),
        (b'{\n  "a": 1,\n  "b": }', "invalid JSON at line 3 column 8"),
        (b"[1, 2", "invalid JSON at line 1"),
        (b'{"name": "caf\xe9"}', "not UTF-8 text (invalid byte at offset 13)"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"n": ' + b"1" * 5000 + b"}", "invalid JSON: Exceeds the limit"),
        (b"\x1f\x8b\x08\x00", "compressed"),
        (b"PK\x03\x04rest", "compressed"),
        (b"[1, 2]", "top level is an array"),
        (b'"text"', "top level is a string"),
        (b'{"bus": {}, "ext_grid": {}}', "not a pandapower net"),
        (b'{"_module": "os", "_class": "system", "_object": "ls"}', "not a pandapower net"),
    ],
)
def test_malformed_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "feeder.json"
    path.write_bytes(content)
    assert_refused(path, fragment)


def test_missing_file_directory_and_size_limit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_pandapower_json(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_pandapower_json(tmp_path)
    path = tmp_path / "big.json"
    pp.to_json(tiny_net(), str(path))
    with pytest.raises(ConfigError, match=r"larger than the limit .*max_bytes"):
        load_pandapower_json(path, max_bytes=1000)


def test_decode_errors_of_allowed_types_become_config_errors(tmp_path: Path) -> None:
    tree = json.loads(pp.to_json(tiny_net()))
    tree["_object"]["bad_number"] = {"_module": "numpy", "_class": "int64", "_object": "x"}
    path = write_tree(tmp_path / "bad_number.json", tree)
    with pytest.raises(ConfigError, match="pandapower could not decode the net"):
        load_pandapower_json(path)


# ---------------------------------------------------------------------------------------------
# check_net


def test_check_net_accepts_tiny_net() -> None:
    check_net(tiny_net())


def test_net_without_ext_grid(tmp_path: Path) -> None:
    path = save_pandapower_json(tiny_net(ext_grid=False), tmp_path / "no_ext_grid.json")
    error = assert_refused(path, "feeder has no external grid")
    assert error.field == "ext_grid"
    assert len(load_pandapower_json(path, check=False).bus) == 3


def test_ext_grid_out_of_service() -> None:
    net = tiny_net()
    net.ext_grid["in_service"] = False
    with pytest.raises(ConfigError, match="no in-service external grid"):
        check_net(net, file="f.json")


def test_ext_grid_on_unknown_bus_and_malformed_tables() -> None:
    net = tiny_net()
    net.ext_grid.loc[0, "bus"] = 99
    with pytest.raises(ConfigError, match=r"ext_grid connects to bus\(es\) \[99\]"):
        check_net(net)
    net.ext_grid["bus"] = pd.Series([[0]], dtype=object)  # unhashable cell
    with pytest.raises(ConfigError, match="plausibility checks: TypeError"):
        check_net(net)
    net = tiny_net()
    net["line"] = "not a table"
    with pytest.raises(ConfigError, match="'line' is a str, expected a table"):
        check_net(net)


def test_no_buses() -> None:
    with pytest.raises(ConfigError, match="feeder has no buses"):
        check_net(pp.create_empty_network(), file="f.json")


def test_not_a_net() -> None:
    with pytest.raises(ConfigError, match="expected a pandapower net, got dict"):
        check_net({"bus": None})


def test_isolated_bus(tmp_path: Path) -> None:
    net = tiny_net()
    pp.create_bus(net, vn_kv=0.4, name="orphan")
    path = save_pandapower_json(net, tmp_path / "isolated.json")
    error = assert_refused(path, "bus(es) [3 (orphan)]", "not connected")
    assert error.field == "bus"


def test_bus_behind_open_switch_is_isolated_but_out_of_service_bus_is_not() -> None:
    net = tiny_net()
    extra = pp.create_bus(net, vn_kv=0.4, name="behind switch")
    pp.create_switch(net, 2, extra, et="b", closed=False)
    with pytest.raises(ConfigError, match=r"\[3 \(behind switch\)\]"):
        check_net(net)
    net.bus.loc[extra, "in_service"] = False
    check_net(net)


@pytest.mark.parametrize(
    ("table", "column", "value", "fragment"),
    [
        ("load", "p_mw", float("nan"), "load [0] have invalid p_mw"),
        ("load", "q_mvar", float("inf"), "load [0] have invalid q_mvar"),
        ("sgen", "p_mw", -float("inf"), "sgen [0] have invalid p_mw"),
        ("sgen", "q_mvar", float("nan"), "sgen [0] have invalid q_mvar"),
        ("line", "length_km", -0.1, "line [1] have invalid length_km"),
        ("line", "length_km", 0.0, "line [1] have invalid length_km"),
        ("line", "max_i_ka", -0.2, "line [1] have invalid max_i_ka"),
        ("line", "max_i_ka", float("nan"), "line [1] have invalid max_i_ka"),
    ],
)
def test_bad_values(table: str, column: str, value: float, fragment: str) -> None:
    net = tiny_net()
    row = 1 if table == "line" else 0
    net[table].loc[row, column] = value
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")) as info:
        check_net(net, file="feeder.json")
    assert info.value.field == f"{table}.{column}"
    assert str(info.value).startswith("feeder.json: ")


def test_negative_load_and_reactive_power_are_fine() -> None:
    net = tiny_net()
    net.load.loc[0, "p_mw"] = -0.01  # a net exporter modelled as negative load
    check_net(net)


def test_trafo_rating_must_be_positive() -> None:
    net = pn.example_simple()
    net.trafo.loc[0, "sn_mva"] = 0.0
    with pytest.raises(ConfigError, match=r"trafo \[0\] have invalid sn_mva"):
        check_net(net)


# ---------------------------------------------------------------------------------------------
# property tests: any JSON is either a net or a GridplanError, and nothing is imported

_MODULES = st.sampled_from(
    [
        "os",
        "builtins",
        "subprocess",
        "numpy",
        "pandas",
        "pandas.core.frame",
        "pandas.core.series",
        "pandapower.auxiliary",
        "pandapower.toolbox",
        "pandapower.control.controller.const_control",
        "shapely",
        "networkx",
        "geopandas.geodataframe",
        "gp_hypothesis_sentinel",
        "pandas_gp_hypothesis_sentinel",
        "",
    ]
) | st.text(max_size=10)
_CLASSES = st.sampled_from(
    sorted({cls for _, cls in ALLOWED_TYPES} | {"function", "method", "system", "Popen", "X"})
) | st.text(max_size=10)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
_KEYS = st.sampled_from(
    ["_module", "_class", "_object", "dtype", "orient", "geo", "bus", "ext_grid", "name", "data"]
) | st.text(max_size=8)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    allowed_tag = st.sampled_from(sorted(ALLOWED_TYPES)).map(
        lambda mc: {"_module": mc[0], "_class": mc[1]}
    )
    random_tag = st.builds(lambda m, c: {"_module": m, "_class": c}, _MODULES, _CLASSES)
    tagged = st.builds(
        lambda tag, obj, extra: {**extra, **tag, "_object": obj},
        allowed_tag | random_tag,
        children | children.map(json.dumps),
        st.dictionaries(
            st.sampled_from(["dtype", "orient", "typ", "crs", "x"]), children, max_size=2
        ),
    )
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(_KEYS, children, max_size=4)
        | tagged
        | children.map(json.dumps)
    )


_TREES = st.recursive(_LEAVES, _extend, max_leaves=12)


@pytest.fixture(scope="module")
def hypothesis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Importable modules named in the property tests' pool; they write a flag when imported."""
    folder = tmp_path_factory.mktemp("hypothesis_modules")
    flag = folder / "imported.flag"
    for name in ["gp_hypothesis_sentinel", "pandas_gp_hypothesis_sentinel"]:
        (folder / f"{name}.py").write_text(
            f"from pathlib import Path\nPath({str(flag)!r}).write_text({name!r})\n"
        )
    sys.path.insert(0, str(folder))
    yield flag
    sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def tiny_tree() -> dict[str, Any]:
    return json.loads(pp.to_json(tiny_net()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_TREES)
# Regression examples found by exploration: a list where the walker expects a string it
# looks up in a set of names (the walker raised TypeError: unhashable type: 'list').
@example(tree={"orient": [], "_module": "pandas", "_class": "Series", "_object": None})
@example(tree={"_module": "pandas", "_class": "Series", "_object": "[]", "orient": {}})
@example(tree={"_module": "shapely", "_class": "Point", "_object": {"type": []}})
@example(
    tree={"_module": "pandas", "_class": "DataFrame", "_object": '{"geo": {"0": {"type": [1]}}}'}
)
def test_validate_random_trees(hypothesis_sentinel: Path, tree: Any) -> None:
    for candidate in (tree, net_tree(x=tree)):
        try:
            validate_pandapower_json(candidate, file="random.json")
        except ConfigError as error:
            assert str(error).startswith("random.json: ")
        else:
            assert _direct_tags(candidate) <= set(ALLOWED_TYPES)
    assert not hypothesis_sentinel.exists()


def _direct_tags(tree: Any) -> set[tuple[Any, Any]]:
    """Independent oracle: tag pairs in dicts (not inside JSON strings)."""
    found: set[tuple[Any, Any]] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "_module" in node or "_class" in node:
                found.add((node.get("_module"), node.get("_class")))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(tree=_TREES, key=_KEYS | st.sampled_from(["bus", "line", "load", "std_types", "version"]))
def test_load_random_documents_only_raises_gridplan_errors(
    hypothesis_sentinel: Path, tiny_tree: dict[str, Any], tmp_path: Path, tree: Any, key: str
) -> None:
    document = json.loads(json.dumps(tiny_tree))
    document["_object"][key] = tree  # a legit net with one entry replaced by random JSON
    for index, candidate in enumerate((document, tree)):
        path = tmp_path / f"random{index}.json"
        path.write_text(json.dumps(candidate), encoding="utf-8")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = load_pandapower_json(path)
        except GridplanError:
            pass
        else:
            assert isinstance(net, pandapowerNet)
    assert not hypothesis_sentinel.exists()
    assert "gp_hypothesis_sentinel" not in sys.modules
    assert "pandas_gp_hypothesis_sentinel" not in sys.modules


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(content=st.binary(max_size=200))
def test_load_random_bytes_only_raises_gridplan_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bytes.json"
    path.write_bytes(content)
    try:
        load_pandapower_json(path)
    except GridplanError:
        pass


# ---------------------------------------------------------------------------------------------
# parser differentials: what pandapower decodes is what gridplan checked (issue 16)


def frame_with_cell(cell: Any, *, column: str = "name") -> dict[str, Any]:
    """A DataFrame entry (orient split) whose single cell is ``cell``."""
    return frame_entry([column, "vn_kv"], [[cell, 0.4]])


def issue_16_surrogate_net() -> dict[str, Any]:
    """The repro of issue 16: a ``bus`` cell whose tag keys start with a lone surrogate."""
    tree = json.loads(pp.to_json(pn.simple_four_bus_system()))
    bus = tree["_object"]["bus"]
    table = json.loads(bus["_object"])
    table["data"][0][0] = {"\ud800_module": "this", "\ud800_class": "s", "\ud800_object": "x"}
    bus["_object"] = json.dumps(table)
    return tree


def test_issue_16_surrogate_key_repro_is_refused(tmp_path: Path) -> None:
    sys.modules.pop("this", None)
    path = write_tree(tmp_path / "surrogate.json", issue_16_surrogate_net())
    error = assert_refused(path, "lone UTF-16 surrogate", "pandas' JSON parser drops it")
    assert error.field == '$._object.bus._object<json>.data[0][0]["\\ud800_module"]'
    assert "this" not in sys.modules


def test_surrogate_keys_reach_pandapower_as_tags() -> None:
    """Shows the differential is real: pandas' parser turns ``"\\ud800_module"`` into a tag."""
    decoded = decode_recording(json.dumps(issue_16_surrogate_net()))
    assert ("this", "s") in decoded.tags
    assert "this" not in sys.modules  # the recorder never lets pandapower import it


@pytest.mark.parametrize(
    "tree",
    [
        net_tree(**{"\ud800bus": 1}),  # a key of the net
        net_tree(name="feeder \udfff"),  # a string value
        net_tree(line=frame_with_cell("cell \ud83d")),  # a string inside a table
        net_tree(line=frame_with_cell({"\udc00a": 1})),  # a key inside a table cell
        net_tree(std_types={"line": {"NAYY \ud800": {"r_ohm_per_km": 0.1}}}),
        net_tree(pair={"_module": "builtins", "_class": "tuple", "_object": ["\ud800"]}),
    ],
    ids=["net-key", "net-value", "cell-string", "cell-key", "std-type-key", "tuple-item"],
)
def test_lone_surrogates_are_refused_anywhere(tmp_path: Path, tree: dict[str, Any]) -> None:
    path = tmp_path / "lone.json"
    path.write_text(json.dumps(tree), encoding="ascii")  # escapes: "\ud800"
    assert_refused(path, "lone UTF-16 surrogate")


def test_surrogate_pairs_are_characters_and_accepted(tmp_path: Path) -> None:
    net = tiny_net()
    net.bus.loc[0, "name"] = "bus \U0001f600"
    net["name"] = "feeder \U00010000"
    path = tmp_path / "astral.json"
    pp.to_json(net, str(path))
    text = path.read_text(encoding="utf-8")
    assert "\\ud800\\udc00" in text  # a surrogate pair in the net
    assert "\\\\ud83d\\\\ude00" in text  # and one inside the bus table's text
    loaded = load_pandapower_json(path)
    assert loaded.bus.loc[0, "name"] == "bus \U0001f600"
    assert loaded["name"] == "feeder \U00010000"


TAG_LOOKALIKES = [
    "_MODULE",
    " _module",
    "_module ",
    "\t_class",
    "_mod\x00ule",
    "\x00_object",
    "\uff3fmodule",  # fullwidth low line: NFKC makes it "_"
    "\ufe4dclass",  # dashed low line
    "_\u200bmodule",  # zero-width space
    "\u00a0_object",  # no-break space
    "_\u2028class",  # line separator
    "_ＭＯＤＵＬＥ",  # fullwidth letters
    "_obje\u0441t".replace("\u0441", "c").upper(),  # plain upper case
]


@pytest.mark.parametrize("key", TAG_LOOKALIKES)
def test_keys_that_fold_to_a_tag_are_refused(tmp_path: Path, key: str) -> None:
    for tree in (
        net_tree(hook={key: "os", "x": 1}),
        net_tree(line=frame_with_cell({key: "os", "_class": "s", "_object": "x"})),
    ):
        path = write_tree(tmp_path / "lookalike.json", tree)
        assert_refused(path, "reads as the type tag")


def test_tag_like_keys_that_do_not_fold_are_plain_keys(tmp_path: Path) -> None:
    """Look-alikes no parser turns into a tag stay plain data (e.g. Cyrillic letters)."""
    tree = json.loads(pp.to_json(tiny_net()))
    tree["_object"]["notes"] = {"_modul\u0435": "os", "module": 1, "_mod": 2, "class_": 3}
    path = write_tree(tmp_path / "plain_keys.json", tree)
    assert load_pandapower_json(path)["notes"]["module"] == 1


def test_the_pandas_view_of_a_table_is_walked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defense in depth: with the surrogate and look-alike checks switched off, the walk of
    the table as pandas parses it still finds the tag pandapower would act on."""
    import gridplan.grid.safe_json as safe_json

    monkeypatch.setattr(safe_json, "_check_text", lambda *args, **kwargs: None)
    monkeypatch.setattr(safe_json, "_tag_like", lambda key: None)
    path = write_tree(tmp_path / "surrogate.json", issue_16_surrogate_net())
    error = assert_refused(path, "_module='this'")
    assert error.field == "$._object.bus._object<pandas>.data[0][0]"


def test_a_table_pandas_cannot_parse_is_refused(tmp_path: Path) -> None:
    entry = frame_entry(["name"], [[1]])
    entry["_object"] = '{"columns": ["name"], "index": [0], "data": [[' + "9" * 30 + "]]}"
    path = write_tree(tmp_path / "big_int.json", net_tree(line=entry))
    assert_refused(path, "$._object.line._object", "pandas cannot parse")


def _net_text_with(piece: str) -> str:
    """A tiny net's JSON text with ``piece`` (JSON text) added as entry ``crafted``."""
    text = pp.to_json(tiny_net())
    head, _, tail = text.rpartition("}")
    head, _, _ = head.rpartition("}")
    return head + ', "crafted": ' + piece + "}" + tail + "}"


@pytest.mark.parametrize(
    ("piece", "fragment"),
    [
        ('{"a": {"_module": "MODULE", "_class": "s", "_object": "x"}, "a": 1}', "'a'"),
        (
            '{"_module": "builtins", "_class": "tuple", "_object": [], "_module": "MODULE"}',
            "_module",
        ),
        (
            json.dumps(frame_entry(["name"], [[1]])).replace(
                '"orient": "split"', '"orient": "split", "orient": "split"'
            ),
            "'orient'",
        ),
    ],
    ids=["overwritten-entry", "overwritten-tag", "repeated-extra-key"],
)
def test_repeated_keys_are_refused(
    sentinels: dict[str, Any], tmp_path: Path, piece: str, fragment: str
) -> None:
    """pandapower's hook acts on every copy of a repeated key while parsing, although only
    the last value is kept: the first copy would import the module."""
    path = tmp_path / "repeated.json"
    path.write_text(_net_text_with(piece.replace("MODULE", sentinels["importer"])))
    assert_refused(path, "repeats the key", fragment)
    assert not sentinels["flag"].exists()


def test_repeated_keys_inside_table_and_geojson_texts_are_refused(tmp_path: Path) -> None:
    entry = frame_entry(["name"], [[1]])
    entry["_object"] = entry["_object"].replace('"index"', '"data": [], "index"')
    path = write_tree(tmp_path / "table.json", net_tree(line=entry))
    assert_refused(path, "$._object.line._object", "repeats the key 'data'")
    geo = '{"type": "Point", "coordinates": [0, 0], "x": {"type": "__init__"}, "x": 1}'
    path = write_tree(tmp_path / "geo.json", net_tree(line=frame_entry(["geo"], [[geo]])))
    assert_refused(path, "$._object.line._object<json>.data[0][0]", "repeats the key 'x'")


def test_plain_pandapower_acts_on_overwritten_values(sentinels: dict[str, Any]) -> None:
    """Shows the repeated-key route is real: the hook decodes the value a later copy hides."""
    text = _net_text_with(
        '{"a": {"_module": "' + sentinels["importer"] + '", "_class": "s", "_object": "x"}, "a": 1}'
    )
    assert (sentinels["importer"], "s") in decode_recording(text).tags


# ---------------------------------------------------------------------------------------------
# wrong types and deep nesting: always a ConfigError, never TypeError/KeyError/RecursionError


def _nested(depth: int, leaf: Any, *, in_dict: bool = False) -> Any:
    """``depth`` levels of lists (or dicts) around ``leaf``, built without recursion."""
    node = leaf
    for _ in range(depth):
        node = {"a": node} if in_dict else [node]
    return node


@pytest.mark.parametrize("depth", [50, 5_000, 200_000])
def test_deeply_nested_trees_are_walked_without_recursion(depth: int) -> None:
    """The walker is iterative: a deep tree is walked to the bottom, where the bad tag is."""
    for in_dict in (False, True):
        bad = {"_module": "os", "_class": "system", "_object": "x"}
        with pytest.raises(ConfigError, match="_module='os'") as info:
            validate_pandapower_json(net_tree(x=_nested(depth, bad, in_dict=in_dict)))
        assert "\n" not in str(info.value)
        validate_pandapower_json(net_tree(x=_nested(depth, 1, in_dict=in_dict)))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"columns": ["a"], "index": [0], "data": [[' + "[" * 2000 + "]" * 2000 + "]]}", "pandas"),
    ],
)
def test_deeply_nested_table_texts_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    entry = frame_entry(["a"], [[1]])
    entry["_object"] = text
    path = write_tree(tmp_path / "deep_table.json", net_tree(line=entry))
    assert_refused(path, fragment)


@pytest.mark.parametrize(
    "value",
    [None, True, 0, 1.5, float("nan"), "x", "[1", [], [[]], {}, {"a": []}, _nested(500, 1)],
)
@pytest.mark.parametrize(
    "place",
    ["_module", "_class", "_object", "orient", "dtype", "typ", "index_names", "is_multiindex"],
)
def test_wrong_json_types_in_every_field_are_config_errors(value: Any, place: str) -> None:
    entry: dict[str, Any] = {"_module": "pandas", "_class": "Series", "_object": "[]"}
    entry[place] = value
    for tree in (net_tree(s=entry), net_tree(line=frame_with_cell(entry)), entry, value):
        try:
            validate_pandapower_json(tree, file="types.json")
        except ConfigError as error:
            assert str(error).startswith("types.json: ")


# ---------------------------------------------------------------------------------------------
# differential fuzzing: the walker against pandapower's own decoder (issue 16, point 1)

ALLOWED_MODULES = frozenset(module for module, _ in ALLOWED_TYPES)


class Decoded:
    """What pandapower's decoder acted on: type tags, module imports, GeoJSON factory names."""

    def __init__(self) -> None:
        self.tags: list[tuple[Any, Any]] = []
        self.imports: list[str] = []
        self.geojson_types: list[str] = []

    def unsafe(self) -> list[Any]:
        """Everything pandapower acted on that is not on gridplan's allow-lists."""
        from gridplan.grid.safe_json import _GEOJSON_TYPES

        bad: list[Any] = []
        for tag in self.tags:
            try:
                if tag in ALLOWED_TYPES:
                    continue
            except TypeError:  # an unhashable tag value
                pass
            bad.append(tag)
        bad += [("import", name) for name in self.imports if name not in ALLOWED_MODULES]
        bad += [("geojson", name) for name in self.geojson_types if name not in _GEOJSON_TYPES]
        return bad


class _RecordingFactory:
    """Stands in for ``geojson.factory``: records every name looked up on it (dunder names
    included) and hands out only GeoJSON types (anything else is an AttributeError, which
    geojson tolerates)."""

    def __init__(self, real: Any, names: list[str]) -> None:
        object.__setattr__(self, "_state", (real, names))

    def __getattribute__(self, name: str) -> Any:
        from gridplan.grid.safe_json import _GEOJSON_TYPES

        real, names = object.__getattribute__(self, "_state")
        names.append(name)
        if name not in _GEOJSON_TYPES:
            raise AttributeError(name)
        return getattr(real, name)


def decode_recording(text: str) -> Decoded:
    """Decode ``text`` with pandapower's object hook while recording what it acts on.

    ``pandapower.io_utils.pp_hook`` (which every level of decoding goes through, the
    DataFrame cells included) records each ``(_module, _class)`` tag and drops tags off the
    allow-list; ``importlib.import_module`` inside ``io_utils`` records each module and
    imports only allow-listed ones; ``geojson.factory`` records each GeoJSON type. Nothing a
    crafted text names is imported or called.
    """
    from unittest import mock

    import geojson
    import pandapower.io_utils as io_utils
    from pandapower.file_io import from_json_string

    decoded = Decoded()
    original_hook = io_utils.pp_hook

    def hook(d: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(d, dict) and "_module" in d and "_class" in d:
            tag = (d["_module"], d["_class"])
            decoded.tags.append(tag)
            try:
                allowed = tag in ALLOWED_TYPES
            except TypeError:
                allowed = False
            if not allowed:
                return None
        return original_hook(d, *args, **kwargs)

    class _Importlib:
        @staticmethod
        def import_module(name: str, package: str | None = None) -> Any:
            decoded.imports.append(name)
            if name not in ALLOWED_MODULES:
                raise ModuleNotFoundError(name)
            return importlib.import_module(name, package)

    factory = _RecordingFactory(geojson.factory, decoded.geojson_types)
    with (
        mock.patch.object(io_utils, "pp_hook", hook),
        mock.patch.object(io_utils, "importlib", _Importlib),
        mock.patch.object(geojson, "factory", factory),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        try:
            from_json_string(text, empty_dict_like_object={})
        except Exception:  # malformed-but-accepted data: decoding may fail, that is fine
            pass
    return decoded


def check_differential(text: str) -> None:
    """The oracle: a document the walker accepts makes pandapower act on allowed tags only."""
    from gridplan.grid.safe_json import _parse_document

    try:
        validate_pandapower_json(_parse_document(text, "fuzz.json"), file="fuzz.json")
    except ConfigError:  # invalid JSON, a repeated key, or refused by the walker
        event("refused by the loader")
        return
    event("accepted by the loader, decoded by pandapower")
    unsafe = decode_recording(text).unsafe()
    assert not unsafe, f"walker accepted a document pandapower acts on: {unsafe}"


def _key_variants(tag: str) -> list[str]:
    """JSON texts (escapes included) of keys that are, or look like, the type tag ``tag``."""
    body = tag[1:]
    return [
        json.dumps(tag),
        '"\\u005f' + body + '"',  # the tag, spelled with an escape
        '"\\ud800' + tag + '"',  # lone high surrogate: pandas drops it
        '"' + tag + '\\ud800"',
        '"\\udc00' + tag + '"',  # lone low surrogate: pandas keeps it
        '"\\ud83d' + tag + '"',
        '"\\ud800\\ud800' + tag + '"',
        '"\\ud800\\udc00' + tag + '"',  # a valid pair: one astral character
        '"\\u0000' + tag + '"',
        '" ' + tag + '"',
        '"' + tag + '\\t"',
        json.dumps(tag.upper()),
        '"\\uff3f' + body + '"',
        '"_\\u200b' + body + '"',
        '"\\u00a0' + tag + '"',
    ]


_TAG_KEY_TEXTS = {tag: _key_variants(tag) for tag in ("_module", "_class", "_object")}
_ODD_CHARS = (
    st.characters()
    | st.integers(0xD800, 0xDFFF).map(chr)
    | st.sampled_from(["_", "\x00", " ", "\u200b", "\uff3f", "\ufe4d", "\u00a0"])
)
_ODD_TEXT = st.text(_ODD_CHARS, max_size=10)
_DIFF_KEYS = (
    st.sampled_from([k for variants in _TAG_KEY_TEXTS.values() for k in variants])
    | st.sampled_from(["orient", "dtype", "type", "geo", "name", "data"]).map(json.dumps)
    | _ODD_TEXT.map(json.dumps)
)
_DIFF_MODULES = st.sampled_from(
    [
        "this",
        "gp_differential_sentinel",
        "os",
        "builtins",
        "numpy",
        "pandas",
        "pandas.core.frame",
        "pandapower.auxiliary",
        "pandapower.toolbox",
    ]
).map(json.dumps) | st.sampled_from(['"o\\ud800s"', '"\\ud800os"', '"pandas\\udc00"'])
_DIFF_CLASSES = st.sampled_from(
    ["s", "function", "system", "DataFrame", "Series", "array", "float64", "tuple", "Point"]
).map(json.dumps)
_DIFF_LEAVES = st.sampled_from(
    ["null", "true", "false", "0", "-1", "1.5", "1e400", '"x"', '"{}"', '"[]"', "NaN"]
) | _ODD_TEXT.map(json.dumps)


def _object_text(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"


def _tagged(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Objects with a type tag spelled in one style or in mixed styles (see _key_variants)."""
    style = st.integers(0, len(_TAG_KEY_TEXTS["_module"]) - 1)
    same_style = st.builds(
        lambda i, module, cls, obj: _object_text(
            [
                (_TAG_KEY_TEXTS["_module"][i], module),
                (_TAG_KEY_TEXTS["_class"][i], cls),
                (_TAG_KEY_TEXTS["_object"][i], obj),
            ]
        ),
        style,
        _DIFF_MODULES,
        _DIFF_CLASSES,
        children,
    )
    mixed = st.builds(
        lambda keys, module, cls, obj, extra: _object_text(
            [*zip(keys, (module, cls, obj), strict=True), *extra]
        ),
        st.tuples(
            *(st.sampled_from(_TAG_KEY_TEXTS[tag]) for tag in ("_module", "_class", "_object"))
        ),
        _DIFF_MODULES,
        _DIFF_CLASSES,
        children,
        st.lists(st.tuples(_DIFF_KEYS, children), max_size=2),
    )
    return same_style | mixed


def _diff_extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    plain = st.lists(st.tuples(_DIFF_KEYS, children), max_size=4).map(_object_text)
    array = st.lists(children, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
    return plain | array | _tagged(children) | children.map(json.dumps) | _frames(children)


def _frames(cells: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """DataFrame/Series entries whose table text holds ``cells`` (in an object and a geo
    column), in every orient pandapower may write."""

    def table(orient: str, cell: str, geo: str) -> str:
        if orient == "split":
            return '{"columns": ["name", "geo"], "index": [0], "data": [[' + f"{cell}, {geo}]]}}"
        if orient == "records":
            return f'[{{"name": {cell}, "geo": {geo}}}]'
        if orient == "index":
            return f'{{"0": {{"name": {cell}, "geo": {geo}}}}}'
        return f'{{"name": {{"0": {cell}}}, "geo": {{"0": {geo}}}}}'

    geo = cells | st.sampled_from(
        [
            "null",
            '{"type": "Point", "coordinates": [1, 2]}',
            '{"type": "__builtins__"}',
            '{"\\ud800type": "__init__"}',
            '"{\\"type\\": \\"Point\\", \\"coordinates\\": [1, 2]}"',
            '"{\\"type\\": \\"__class__\\"}"',
        ]
    )
    return st.builds(
        lambda tag, orient, cell, geo_cell: _object_text(
            [
                ('"_module"', json.dumps(tag[0])),
                ('"_class"', json.dumps(tag[1])),
                ('"_object"', json.dumps(table(orient, cell, geo_cell))),
                ('"orient"', json.dumps(orient)),
            ]
        ),
        st.sampled_from(
            [
                ("pandas.core.frame", "DataFrame"),
                ("pandas", "DataFrame"),
                ("pandas.core.series", "Series"),
            ]
        ),
        st.sampled_from(["split", "records", "index", "columns"]),
        cells,
        geo,
    )


_DIFF_TEXTS = st.recursive(_DIFF_LEAVES, _diff_extend, max_leaves=10)
# Near misses the walker should accept: allowed tags spelled exactly, with an escaped
# underscore or after a valid surrogate pair (an astral character: not a tag anywhere).
_BENIGN_TAGS = st.builds(
    lambda i, tag, obj: _object_text(
        [
            (_TAG_KEY_TEXTS["_module"][i], json.dumps(tag[0])),
            (_TAG_KEY_TEXTS["_class"][i], json.dumps(tag[1])),
            (_TAG_KEY_TEXTS["_object"][i], obj),
        ]
    ),
    st.sampled_from([0, 1, 7]),
    st.sampled_from(sorted(ALLOWED_TYPES)),
    st.sampled_from(["1", "1.5", '"1"', "[]", "[1, 2]", "{}", '"[]"', '"{}"', "null"]),
)
_DIFF_CELLS = st.one_of(
    _tagged(_DIFF_LEAVES), _tagged(_DIFF_TEXTS), _DIFF_TEXTS, _BENIGN_TAGS, _DIFF_LEAVES
)
#: What the fuzzer puts into a net: mostly a table with crafted cells (the route pandas
#: parses), else a tagged entry or any JSON.
_DIFF_PIECES = st.one_of(
    _frames(_DIFF_CELLS), _frames(_DIFF_CELLS), _tagged(_DIFF_TEXTS), _DIFF_TEXTS, _BENIGN_TAGS
)


def diff_document(piece: str) -> str:
    """A net document holding ``piece`` (a JSON text) as one of its entries."""
    return '{"_module": "pandapower.auxiliary", "_class": "pandapowerNet", "_object": ' + (
        '{"name": "fuzz", "piece": ' + piece + "}}"
    )


_ISSUE_16_CELL = '{"\\ud800_module": "this", "\\ud800_class": "s", "\\ud800_object": "x"}'


def _frame_text(cell: str, geo: str = "null") -> str:
    table = '{"columns": ["name", "geo"], "index": [0], "data": [[' + f"{cell}, {geo}]]}}"
    return _object_text(
        [
            ('"_module"', '"pandas.core.frame"'),
            ('"_class"', '"DataFrame"'),
            ('"_object"', json.dumps(table)),
            ('"orient"', '"split"'),
        ]
    )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(piece=_DIFF_PIECES)
# The routes of issue 16 and what exploration found (each failure becomes an example here).
@example(piece=_frame_text(_ISSUE_16_CELL))
@example(piece=_frame_text('{"\\ud83d_module": "os", "\\ud83d_class": "system", "_object": "x"}'))
@example(piece=_frame_text('{"_module\\ud800": "this", "_class": "s", "_object": "x"}'))
@example(piece=_frame_text('{"\\u005fmodule": "this", "_class": "s", "_object": "x"}'))
@example(
    piece=_frame_text('{"_module": "numpy", "_class": "array", "_object": [], "dtype\\ud800": 1}')
)
@example(piece=_frame_text('{"type": "x", "_module": "o\\ud800s", "_class": "s", "_object": 1}'))
@example(
    piece=_frame_text("1", '{"\\ud800_module": "os", "\\ud800_class": "Series", "_object": 1}')
)
@example(piece=_frame_text("1", '{"\\ud800type": "__init__", "coordinates": []}'))
# pandapower's hook acts on the value of a key a later copy overwrites (found exploring)
@example(
    piece='{"orient": {}, "orient": {"_module": "o\\ud800s", "_class": "tuple", "_object": ""}, '
    '"orient": {}}'
)
@example(piece='{"a": {"_module": "this", "_class": "s", "_object": "x"}, "a": 1}')
@example(piece=_frame_text("1", '"{\\"a\\": {\\"type\\": \\"__init__\\"}, \\"a\\": 1}"'))
def test_walker_agrees_with_pandapower_decoder(piece: str) -> None:
    check_differential(diff_document(piece))


@pytest.mark.slow
@settings(
    max_examples=5000,
    derandomize=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(piece=_DIFF_PIECES)
def test_walker_agrees_with_pandapower_decoder_explore(piece: str) -> None:
    """Keeps exploring with fresh random documents; add each failure as an @example above."""
    check_differential(diff_document(piece))

"""No code from feeder files (issue 16): both code-execution routes, through the CLI.

Route 1: ``network.source = "pandapower"`` looked any callable up in ``pandapower.networks``,
``from_json`` and ``sorted_from_json`` among them (they decode JSON with no gridplan checks),
and passed any option on (several builders forward ``**kwargs`` to ``from_json``). Now only
allow-listed builders are called, with plain-scalar options
(:mod:`gridplan.grid.network_sources`).

Route 2: a JSON feeder's table cell whose tag keys carry a lone surrogate
(``"\\ud800_module"``): Python's ``json`` keeps it, so the walker saw no tag, while pandas'
JSON parser (which pandapower uses for tables) drops it and pandapower imported the module.
Now :mod:`gridplan.grid.safe_json` refuses lone surrogates and keys that fold to a tag, and
walks each table as pandas parses it.

Each attack writes a feeder spec and a study TOML in ``tmp_path`` and runs ``gridplan study``
through :func:`gridplan.cli.main`: exit status 2, one line naming the file and the field, no
output folder, and no trace of the sentinel module (it writes a flag file when imported).
"""

from __future__ import annotations

import inspect
import json
import math
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pandapower as pp
    import pandapower.networks as pn

from pandapower.toolbox import nets_equal

from gridplan.cli import main
from gridplan.core.config import validate
from gridplan.core.errors import ConfigError
from gridplan.grid import builders, network_sources
from gridplan.grid.feeders import FeederSpec, _pandapower_net, read_feeder_spec
from gridplan.grid.network_sources import (
    PANDAPOWER_NETWORKS,
    Option,
    OptionError,
    check_options,
    choice,
    count,
    flag,
    number,
    std_type_name,
)

ZEN = "Beautiful is better than ugly"

#: The feeder of issue 16, route 1, verbatim (plus the asset table every spec needs).
ISSUE_16_ROUTE_1 = """\
name = "evil"
[network]
source = "pandapower"
function = "from_json"
options = { filename_or_str = '{"_module": "pandapower.auxiliary", "_class": "pandapowerNet", \
"_object": {"a": {"_module": "this", "_class": "s", "_object": "y"}}}' }
[[assets]]
kind = "trafo"
"""


@dataclass(frozen=True)
class Sentinel:
    """A module on ``sys.path`` that writes ``flag`` when imported (or its ``touch`` called)."""

    name: str
    flag: Path

    def untouched(self) -> bool:
        return not self.flag.exists() and self.name not in sys.modules


@pytest.fixture
def sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sentinel]:
    name = f"gp_code_execution_sentinel_{uuid.uuid4().hex[:10]}"
    flag = tmp_path / "sentinel.flag"
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / f"{name}.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(flag)!r}).write_text('imported')\n"
        "class s:\n"
        "    pass\n"
        "def touch(*args, **kwargs):\n"
        f"    Path({str(flag)!r}).write_text('called')\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(folder))
    yield Sentinel(name, flag)
    sys.modules.pop(name, None)


@dataclass(frozen=True)
class Run:
    code: int
    err: str
    out: str
    feeder: Path
    output_dir: Path


def run_study(tmp_path: Path, feeder_toml: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Write ``feeder_toml`` and a study on it in ``tmp_path``; run ``gridplan study``."""
    feeder = tmp_path / "feeder.toml"
    feeder.write_text(feeder_toml, encoding="utf-8")
    study = tmp_path / "study.toml"
    study.write_text('name = "attack"\nfeeder = "feeder.toml"\n', encoding="utf-8")
    output_dir = tmp_path / "out"
    capsys.readouterr()
    code = main(["study", str(study), "--output-dir", str(output_dir)])
    captured = capsys.readouterr()
    return Run(code, captured.err.strip(), captured.out, feeder, output_dir)


def assert_refused(run: Run, file: Path, field: str, *fragments: str) -> None:
    """Exit 2, one ``error:`` line naming ``file`` and ``field``, nothing written."""
    assert run.code == 2, (run.code, run.err)
    assert run.err.count("\n") == 0, run.err
    assert run.err.startswith(f"error: {file}: field '{field}': "), run.err
    for fragment in fragments:
        assert fragment in run.err, run.err
    assert "Traceback" not in run.err
    assert ZEN not in run.out and ZEN not in run.err
    assert not (run.output_dir / "attack").exists()


def feeder_with_network(network: str) -> str:
    return f'name = "evil"\n[network]\n{network}\n[[assets]]\nkind = "trafo"\n'


def toml_string(text: str) -> str:
    """``text`` as a TOML literal string (single quotes; ``text`` holds none)."""
    assert "'" not in text and "\n" not in text
    return f"'{text}'"


# ---------------------------------------------------------------------------------------------
# route 1: network functions and their options


def test_issue_16_route_1_repro(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.modules.pop("this", None)
    run = run_study(tmp_path, ISSUE_16_ROUTE_1, capsys)
    assert_refused(
        run,
        run.feeder,
        "network.function",
        "from_json decodes JSON without gridplan's checks",
        'network.source = "json"',
        "allowed: example_simple",
    )
    assert "this" not in sys.modules


def _sentinel_net_json(sentinel: Sentinel) -> str:
    entry = {"_module": sentinel.name, "_class": "s", "_object": "y"}
    tree = {"_module": "pandapower.auxiliary", "_class": "pandapowerNet", "_object": {"a": entry}}
    return json.dumps(tree)


@pytest.mark.parametrize("function", ["from_json", "sorted_from_json", "from_json_string"])
def test_json_decoders_are_never_called(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sentinel: Sentinel, function: str
) -> None:
    net_json = tmp_path / "net.json"
    net_json.write_text(_sentinel_net_json(sentinel), encoding="utf-8")
    option = "path" if function == "sorted_from_json" else "filename_or_str"
    value = str(net_json) if function == "sorted_from_json" else _sentinel_net_json(sentinel)
    network = (
        f'source = "pandapower"\nfunction = "{function}"\n'
        f"options = {{ {option} = {toml_string(value)} }}"
    )
    run = run_study(tmp_path, feeder_with_network(network), capsys)
    assert_refused(run, run.feeder, "network.function")
    assert sentinel.untouched()


def test_builder_kwargs_never_reach_from_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sentinel: Sentinel
) -> None:
    """``mv_oberrhein(**kwargs)`` forwards ``replace_elements`` to ``from_json``, which
    rewrites pandapower's own file before decoding it: a type tag injected by text."""
    network = (
        'source = "pandapower"\nfunction = "mv_oberrhein"\n'
        'options = { replace_elements = { \'"_module": "pandas.core.frame"\' = '
        f'\'"_module": "{sentinel.name}"\' }} }}'
    )
    run = run_study(tmp_path, feeder_with_network(network), capsys)
    assert_refused(
        run, run.feeder, "network.options", "has no option 'replace_elements'", "scenario"
    )
    assert sentinel.untouched()


@pytest.mark.parametrize(
    ("network", "field", "fragment"),
    [
        ('function = "runpp"', "network.function", "not an allowed pandapower.networks function"),
        ('function = "create_bus"', "network.function", "not an allowed"),
        ('function = "_get_cases_path"', "network.function", "not an allowed"),
        ('function = "deepcopy"', "network.function", "not an allowed"),
        ('function = "example_simpel"', "network.function", "did you mean 'example_simple'?"),
        ('function = "__builtins__"', "network.function", "not an allowed"),
        ('function = "example_simple"\noptions = { x = 1 }', "network.options", "no options"),
        (
            'function = "create_kerber_landnetz_freileitung_1"\n'
            'options = { std_type = \'{"_module": "os"}\' }',
            "network.options",
            "standard-type name",
        ),
        (
            'function = "kb_extrem_landnetz_freileitung"\noptions = { trafotype = "/etc/passwd" }',
            "network.options",
            "standard-type name",
        ),
        (
            'function = "create_dickert_lv_network"\noptions = { trafo_type_data = { a = 1 } }',
            "network.options",
            "has no option 'trafo_type_data'",
        ),
        (
            'function = "mv_oberrhein"\noptions = { separation_by_sub = true }',
            "network.options",
            "has no option 'separation_by_sub'",
        ),
        ('function = "mv_oberrhein"\noptions = { scenario = 1 }', "network.options", "one of"),
        ('function = "case1888rte"\noptions = { ref_bus_idx = [1, 2] }', "network.options", "int"),
        ('function = "create_cigre_network_mv"\noptions = { with_der = true }', "", "one of"),
        ('function = "create_cigre_network_hv"\noptions = { length_km_6a_6b = nan }', "", "finite"),
        (
            'function = "create_kerber_landnetz_freileitung_2"\n'
            'options = { std_type = "NAYY 9x9" }',
            "",
            "could not",
        ),
    ],
)
def test_network_function_and_options_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], network: str, field: str, fragment: str
) -> None:
    run = run_study(tmp_path, feeder_with_network(f'source = "pandapower"\n{network}'), capsys)
    assert_refused(run, run.feeder, field or "network.options", fragment)


@pytest.mark.parametrize(
    ("network", "fragment"),
    [
        ('source = "json"\npath = "net.json"\noptions = { convert = false }', "takes no options"),
        ('source = "simbench"\ncode = "1-LV-rural1--0-sw"\noptions = { a = 1 }', "no options"),
        ('source = "builder"\nbuilder = "us_residential"\noptions = { seed = "1" }', "integer"),
        ('source = "builder"\nbuilder = "us_residential"\noptions = { seed = -1 }', ">= 0"),
        ('source = "builder"\nbuilder = "us_residential"\noptions = { n_laterals = 1.0 }', "int"),
        ('source = "builder"\nbuilder = "us_residential"\noptions = { pv_kw = inf }', "finite"),
        ('source = "builder"\nbuilder = "us_residential"\noptions = { pv_share = true }', "number"),
        ('source = "builder"\nbuilder = "us_residential"\noptions = { pv_share = [1] }', "number"),
        ('source = "builder"\nbuilder = "us_residential"\noptions = { power_factor = 0 }', "> 0"),
        ('source = "builder"\nbuilder = "us_residential"\noptions = { sed = 1 }', "'seed'?"),
        (
            'source = "builder"\nbuilder = "us_residential"\noptions = { seed = { a = 1 } }',
            "integer",
        ),
    ],
)
def test_options_of_other_sources_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], network: str, fragment: str
) -> None:
    run = run_study(tmp_path, feeder_with_network(network), capsys)
    assert_refused(run, run.feeder, "network.options", fragment)


def test_simbench_codes_come_from_simbench(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network = 'source = "simbench"\ncode = "../../etc/passwd"'
    run = run_study(tmp_path, feeder_with_network(network), capsys)
    assert_refused(run, run.feeder, "network.code", "not a valid SimBench code")
    run = run_study(
        tmp_path, feeder_with_network('source = "simbench"\ncode = "1-LV-rural1--0-sX"'), capsys
    )
    assert_refused(run, run.feeder, "network.code", "did you mean '1-LV-rural1--0-sw'?")


# ---------------------------------------------------------------------------------------------
# route 2: a JSON feeder pandas reads differently from Python


def _surrogate_net(cell: dict[str, Any], *, column: int = 0) -> dict[str, Any]:
    """``simple_four_bus_system`` with a ``bus`` table cell replaced by ``cell`` (issue 16)."""
    tree = json.loads(pp.to_json(pn.simple_four_bus_system()))
    bus = tree["_object"]["bus"]
    table = json.loads(bus["_object"])
    table["data"][0][column] = cell
    bus["_object"] = json.dumps(table)
    return tree


def _json_feeder(tmp_path: Path, tree: dict[str, Any]) -> tuple[str, Path]:
    net_json = tmp_path / "net.json"
    net_json.write_text(json.dumps(tree), encoding="utf-8")  # ASCII: "\ud800" escapes
    return feeder_with_network('source = "json"\npath = "net.json"'), net_json


def test_issue_16_route_2_repro(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.modules.pop("this", None)
    cell = {"\ud800_module": "this", "\ud800_class": "s", "\ud800_object": "x"}
    feeder, net_json = _json_feeder(tmp_path, _surrogate_net(cell))
    run = run_study(tmp_path, feeder, capsys)
    assert_refused(
        run,
        net_json,
        '$._object.bus._object<json>.data[0][0]["\\ud800_module"]',
        "lone UTF-16 surrogate",
    )
    assert "this" not in sys.modules


TAG_KEY_STYLES = {
    # pandas drops a lone high surrogate before or after the tag name
    "high-prefix": ("\ud800_module", "\ud800_class", "\ud800_object"),
    "high-suffix": ("_module\ud800", "_class\ud800", "_object\ud800"),
    "emoji-half": ("\ud83d_module", "\ud83d_class", "_object"),
    # look-alikes that fold to the tag
    "fullwidth": ("\uff3fmodule", "\uff3fclass", "\uff3fobject"),
    "nul": ("\x00_module", "\x00_class", "_object"),
    "upper": ("_MODULE", "_CLASS", "_OBJECT"),
}


@pytest.mark.parametrize("style", sorted(TAG_KEY_STYLES))
@pytest.mark.parametrize("column", [0, 1])
def test_tag_keys_pandas_or_a_folding_parser_would_see_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sentinel: Sentinel,
    style: str,
    column: int,
) -> None:
    module, cls, obj = TAG_KEY_STYLES[style]
    cell = {module: sentinel.name, cls: "s", obj: "x"}
    feeder, net_json = _json_feeder(tmp_path, _surrogate_net(cell, column=column))
    run = run_study(tmp_path, feeder, capsys)
    assert run.code == 2 and run.err.count("\n") == 0, run.err
    assert run.err.startswith(f"error: {net_json}: field '$._object.bus._object<json>.data[0]")
    assert "lone UTF-16 surrogate" in run.err or "reads as the type tag" in run.err
    assert sentinel.untouched()


def test_repeated_key_route_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sentinel: Sentinel
) -> None:
    """pandapower's hook decodes the value of a key that a later copy overwrites (found by
    the differential fuzzer): Python's json keeps only the last value, so a walk of the
    parsed tree never sees the first."""
    net_json = tmp_path / "net.json"
    text = pp.to_json(pn.simple_four_bus_system())
    hidden = f'{{"_module": "{sentinel.name}", "_class": "s", "_object": "x"}}'
    text = text.replace('"_object": {', f'"_object": {{"extra": {hidden}, "extra": 1, ', 1)
    net_json.write_text(text, encoding="utf-8")
    feeder = feeder_with_network('source = "json"\npath = "net.json"')
    run = run_study(tmp_path, feeder, capsys)
    assert run.code == 2 and run.err.count("\n") == 0, run.err
    assert run.err.startswith(f"error: {net_json}: "), run.err
    assert "repeats the key 'extra'" in run.err
    assert sentinel.untouched()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pp.from_json(str(net_json))
        except Exception:
            pass
    if not sentinel.flag.exists():
        pytest.skip(f"pandapower {pp.__version__} no longer decodes overwritten values")


def test_plain_pandapower_imports_the_sentinel(tmp_path: Path, sentinel: Sentinel) -> None:
    """Shows route 2 is real: pandapower's own loader imports the module (skipped once a
    pandapower release closes it)."""
    cell = {"\ud800_module": sentinel.name, "\ud800_class": "s", "\ud800_object": "x"}
    _, net_json = _json_feeder(tmp_path, _surrogate_net(cell))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pp.from_json(str(net_json))
        except Exception:
            pass
    if not sentinel.flag.exists():
        pytest.skip(f"pandapower {pp.__version__} no longer decodes the surrogate route")


# ---------------------------------------------------------------------------------------------
# the allow-list itself


def _parameters(function: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(getattr(pn, function)).parameters)


@pytest.mark.parametrize("function", sorted(PANDAPOWER_NETWORKS))
def test_allow_listed_functions_are_pandapower_builders(function: str) -> None:
    fn = network_sources.pandapower_network_function(function)
    assert fn.__module__.startswith("pandapower.networks.")
    parameters = _parameters(function)
    for name, option in PANDAPOWER_NETWORKS[function].items():
        parameter = parameters.get(name)
        assert parameter is not None, f"{function} has no parameter {name}"
        assert parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        default = parameter.default
        if default is not parameter.empty and default is not None:
            assert option.accepts(default), (function, name, default)


@pytest.mark.parametrize(
    "function",
    [
        "example_simple",
        "create_cigre_network_mv",
        "create_dickert_lv_network",
        "create_kerber_landnetz_freileitung_1",
        "kb_extrem_landnetz_freileitung_trafo",
    ],
)
def test_allow_listed_builders_are_deterministic(function: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, second = getattr(pn, function)(), getattr(pn, function)()
    assert nets_equal(first, second, check_only_results=False)


def test_json_decoders_helpers_and_random_nets_are_off_the_list() -> None:
    random_nets = ["create_kerber_dorfnetz", "kb_extrem_vorstadtnetz_1"]  # global random
    for name in [
        "from_json",
        "sorted_from_json",
        "create_dickert_lv_feeders",
        "runpp",
        *random_nets,
    ]:
        assert name not in PANDAPOWER_NETWORKS
        with pytest.raises(OptionError):
            network_sources.pandapower_network_function(name)
    callables = {n for n in dir(pn) if callable(getattr(pn, n)) and not n.startswith("_")}
    others = sorted(callables - set(PANDAPOWER_NETWORKS))
    assert "from_json" in others and "sorted_from_json" in others
    for name in others:
        spec = {"name": "x", "network": {"source": "pandapower", "function": name}}
        spec["assets"] = [{"kind": "trafo"}]
        with pytest.raises(ConfigError, match=r"network\.function"):
            validate(FeederSpec, spec, file="f.toml")


@pytest.mark.parametrize(
    ("function", "options"),
    [
        ("example_simple", {}),
        ("create_cigre_network_mv", {"with_der": "all"}),
        (
            "create_kerber_landnetz_freileitung_1",
            {"std_type": "NAYY 4x150", "n_lines": 5, "p_load_mw": 0.01, "v_os": 20},
        ),
        ("create_dickert_lv_network", {"feeders_range": "middle", "customer": "multiple"}),
        ("create_synthetic_voltage_control_lv_network", {"network_class": "village_1"}),
        ("case9", {}),
    ],
)
def test_allowed_builders_give_pandapowers_net(function: str, options: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = _pandapower_net(function, options, Path("f.toml"))
        reference = getattr(pn, function)(**options)
    assert nets_equal(net, reference, check_only_results=False)


def test_pandapower_net_checks_again_without_the_spec() -> None:
    """``build_feeder`` may get a spec built without validation: the call checks anyway."""
    with pytest.raises(ConfigError, match=r"field 'network\.function'"):
        _pandapower_net("from_json", {"filename_or_str": "{}"}, Path("f.toml"))
    with pytest.raises(ConfigError, match=r"field 'network\.options\.convert'"):
        _pandapower_net("mv_oberrhein", {"convert": False}, Path("f.toml"))
    with pytest.raises(ConfigError, match=r"field 'network\.options'"):
        _pandapower_net("example_simple", ["not", "a", "table"], Path("f.toml"))  # type: ignore[arg-type]


def test_spec_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(feeder_with_network('source = "pandapower"\nfunction = "from_json"'))
    with pytest.raises(ConfigError) as info:
        read_feeder_spec(path)
    assert info.value.file == str(path) and info.value.field == "network.function"


def test_builder_options_match_the_builder() -> None:
    parameters = inspect.signature(builders.build_us_residential).parameters
    allowed = builders.BUILDER_OPTIONS["us_residential"]
    assert set(allowed) == set(parameters)
    for name, option in allowed.items():
        assert option.accepts(parameters[name].default), name
    assert set(builders.BUILDER_OPTIONS) == set(builders.BUILDERS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_laterals": "4"},
        {"n_laterals": 0},
        {"seed": 1.5},
        {"seed": [1, 2]},
        {"pv_share": None},
        {"home_annual_kwh": math.nan},
        {"source_vm_pu": True},
    ],
)
def test_builder_refuses_wrong_types_from_python_too(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=f"option '{next(iter(kwargs))}'"):
        builders.build_us_residential(**kwargs)


@pytest.mark.parametrize(
    ("option", "good", "bad"),
    [
        (flag(), [True, False], [0, 1, "true", None, 1.0]),
        (count(1, 3), [1, 3], [0, 4, True, 2.0, "2", None]),
        (number(0, 1, low_open=True), [1, 0.5, 1e-9], [0, -1, math.nan, math.inf, False, "1"]),
        (choice(False, "all"), [False, "all"], [0, True, "All", None]),
        (
            std_type_name(),
            [
                "NAYY 4x150",
                "0.4 MVA 10/0.4 kV",
                "NA2XS2Y 1x95 RM/25 12/20 kV",
                "122-AL1/20-ST1A 10.0",
            ],
            ["", "/etc/passwd", "a/b", "../x", "net.json", '{"a": 1}', "a\\b", "x" * 65, 1],
        ),
    ],
)
def test_option_kinds(option: Option, good: list[Any], bad: list[Any]) -> None:
    for value in good:
        assert option.accepts(value), value
    for value in bad:
        assert not option.accepts(value), value


def test_check_options_never_raises_anything_but_option_errors() -> None:
    allowed = {"n": count(0, 5)}
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    for options in [None, [], "x", {"n": deep}, {1: 1}, {"n": {"a": deep}}, {"m": 1}]:
        with pytest.raises(OptionError):
            check_options(options, allowed, "f")


def test_simbench_gets_only_its_own_codes() -> None:
    from gridplan.grid.feeders import _simbench_net, _simbench_raw

    with pytest.raises(ValueError, match="not a SimBench code"):
        _simbench_raw("../1-LV-rural1--0-sw")
    for code in ["", "1-LV-rural1--0-sw.json", ["1-LV-rural1--0-sw"]]:
        with pytest.raises(ConfigError, match=r"field 'network\.code'"):
            _simbench_net(code, Path("f.toml"))  # type: ignore[arg-type]

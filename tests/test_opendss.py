"""OpenDSS import (issue 17): safety scan, conversion rules, validation against OpenDSS."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("opendssdirect")

from gridplan.core.errors import ConfigError
from gridplan.grid import opendss

FEEDERS = Path(__file__).resolve().parents[1] / "feeders"
CKT5 = FEEDERS / "epri-ckt5" / "Master_ckt5.dss"
CKT7 = FEEDERS / "epri-ckt7" / "Master_ckt7.dss"

SMALL = """\
Clear
Set DefaultBaseFrequency=60
New Circuit.small basekv=12.47 pu=1.0 r1=0.01 x1=0.1
New Line.l1 bus1=sourcebus bus2=b2 phases=3 r1=0.1 x1=0.2 r0=0.3 x0=0.6 length=1 units=km
~ normamps=200
New Line.l2 bus1=b2.1 bus2=b3.1 phases=1 r1=0.3 x1=0.3 length=0.5 units=km normamps=100
New Transformer.t1 phases=1 windings=2 buses=(b3.1, s1.1) kvs=(7.2, 0.24) kvas=(25, 25) xhl=2
New Loadshape.residential npts=3 interval=1 mult=(0.5 1.0 0.7)
New Load.ld1 bus1=s1.1 phases=1 kv=0.24 kw=10 kvar=3 yearly=residential
New Capacitor.c1 bus1=b2 kv=12.47 kvar=300
Set voltagebases=[12.47, 0.4157]
Calcvoltagebases
"""


def _feeder(tmp_path: Path, extra: str = "", name: str = "Master.dss") -> Path:
    folder = tmp_path / "feeder"
    folder.mkdir(exist_ok=True)
    master = folder / name
    master.write_text(SMALL + extra)
    return master


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# --------------------------------------------------------------------------- safety
PLANTED = [
    "Export voltages",
    "Save circuit dir=out",
    "Show voltages",
    "Plot circuit",
    "System rm -rf x",
    "DOScmd del x",
    "Set DataPath=/tmp",
    "Set DefaultEditor=notepad",
    "Set casename=x demand=true",
    "Var @x=1",
    "Solve",
    "Redirect ../outside.dss",
    "Compile /etc/hosts",
    "BusCoords ../../coords.csv",
    "New Loadshape.x npts=2 interval=1 mult=(file=../shape.csv)",
    "New Foo.bar x=1",
]


@pytest.mark.parametrize("command", PLANTED)
def test_refused_commands_name_file_line_and_command(
    tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "outside.dss").write_text("New Load.x bus1=b2 kw=1\n")
    (tmp_path / "shape.csv").write_text("1\n1\n")
    master = _feeder(tmp_path, command + "\n")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # an empty working folder: nothing may appear in it
    before, cwd_before = _tree(tmp_path), _tree(Path.cwd())
    with pytest.raises(ConfigError) as info:
        opendss.convert(master)
    message = str(info.value)
    assert "\n" not in message
    line = SMALL.count("\n") + 1
    assert f"{master}: line {line}:" in message
    assert command.split()[0] in message
    assert _tree(tmp_path) == before
    assert _tree(Path.cwd()) == cwd_before


def test_refused_command_in_a_redirected_file(tmp_path: Path) -> None:
    master = _feeder(tmp_path, "Redirect more.dss\n")
    (master.parent / "more.dss").write_text("! comment\nExport voltages\n")
    with pytest.raises(ConfigError, match=r"more\.dss: line 2: refused command 'Export voltages'"):
        opendss.convert(master)


def test_clean_circuit_writes_nothing_outside_its_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = _feeder(tmp_path, "New EnergyMeter.m element=Line.l1 terminal=1\n")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    before, cwd_before = _tree(tmp_path), _tree(Path.cwd())
    conv = opendss.convert(master)
    assert len(conv.net.load) == 1
    assert _tree(tmp_path) == before
    assert _tree(Path.cwd()) == cwd_before


def test_missing_master_and_missing_redirect(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="master file not found"):
        opendss.convert(tmp_path / "nope.dss")
    master = _feeder(tmp_path, "Redirect absent.dss\n")
    with pytest.raises(ConfigError, match="file not found"):
        opendss.convert(master)


def test_engine_compile_error_is_one_line_with_the_engine_message(tmp_path: Path) -> None:
    master = _feeder(tmp_path, "New Line.bad bus1=b2 bus2=b9 nosuchproperty=3\n")
    with pytest.raises(ConfigError) as info:
        opendss.convert(master)
    message = str(info.value)
    assert "OpenDSS compile error" in message and str(master) in message
    assert "\n" not in message


def test_scan_lists_every_file_of_the_bundled_circuits() -> None:
    files5 = {p.name for p in opendss.scan_script(CKT5)}
    assert {"Master_ckt5.dss", "Lines_ckt5.dss", "Buscoords_ckt5.dss"} <= files5
    files7 = {p.name for p in opendss.scan_script(CKT7)}
    assert {"AllocationFactors.dss", "BusCoords_ckt7.dss"} <= files7


# --------------------------------------------------------------------------- conversion
def test_small_circuit_conversion_rules(tmp_path: Path) -> None:
    conv = opendss.convert(_feeder(tmp_path))
    net = conv.net
    line = net.line.set_index("name")
    # single-phase lateral: Z x 3, rating x 1/3 (equivalence rule)
    assert line.at["l2", "r_ohm_per_km"] == pytest.approx(3 * 0.3)
    assert line.at["l2", "max_i_ka"] == pytest.approx(0.1 / 3)
    assert line.at["l1", "r_ohm_per_km"] == pytest.approx(0.1)
    trafo = net.trafo.set_index("name")
    assert trafo.at["t1", "sn_mva"] == pytest.approx(0.025)
    assert trafo.at["t1", "vn_hv_kv"] == pytest.approx(7.2 * 3**0.5)
    assert conv.service_trafos == ["t1"]
    assert net.shunt.q_mvar.iloc[0] == pytest.approx(-0.3)
    assert conv.loads.load_class.tolist() == ["residential"]
    assert conv.bus_xy.empty


@pytest.mark.parametrize(
    ("master", "n_loads", "n_service", "report"),
    [(CKT5, 1379, 591, "CapControl: 4"), (CKT7, 906, 158, "CapControl: 2")],
)
def test_epri_conversion_counts_and_report(
    master: Path, n_loads: int, n_service: int, report: str
) -> None:
    conv = opendss.convert(master)
    assert len(conv.net.load) == n_loads
    assert len(conv.service_trafos) == n_service
    assert any(line.startswith(report) for line in conv.report)
    assert conv.head_line is not None
    assert len(conv.bus_xy) > 0


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("master", [CKT5, CKT7], ids=["ckt5", "ckt7"])
def test_epri_circuits_match_opendss(master: Path) -> None:
    for comparison in opendss.validate(master):
        assert comparison.head_p_error <= 0.01, comparison.lines()
        assert comparison.head_q_error <= 0.01, comparison.lines()
        assert comparison.loading_share_ok >= 0.95, comparison.lines()
        assert comparison.primary_vm.diff_pu.abs().max() <= 0.02, comparison.lines()
        assert comparison.passed


def test_engine_flags_disabled_after_compile(tmp_path: Path) -> None:
    opendss.convert(_feeder(tmp_path))
    import opendssdirect as dss

    assert not dss.Basic.AllowForms()
    assert not dss.Basic.AllowEditor()
    assert not dss.Basic.AllowChangeDir()
    assert os.path.realpath(dss.Basic.DataPath()) != os.path.realpath(tmp_path / "feeder")


# --------------------------------------------------------------------------- feeder specs, CLI
def _spec(network: dict[str, object]) -> dict[str, object]:
    return {"name": "x", "network": network, "assets": [{"kind": "trafo"}]}


@pytest.mark.parametrize(
    ("network", "needle"),
    [
        ({"source": "opendss"}, "needs field 'master'"),
        ({"source": "opendss", "master": "/abs/Master.dss"}, "inside the spec's folder"),
        ({"source": "opendss", "master": "../up/Master.dss"}, "inside the spec's folder"),
        ({"source": "opendss", "master": "Master.txt"}, ".dss file"),
        ({"source": "simbench", "code": "1-LV-rural1--0-sw", "master": "M.dss"}, "'opendss'"),
        ({"source": "opendss", "master": "M.dss", "options": {"a": 1}}, "takes no options"),
    ],
)
def test_network_spec_master_is_checked(network: dict[str, object], needle: str) -> None:
    from pydantic import ValidationError

    from gridplan.grid.feeders import FeederSpec

    with pytest.raises(ValidationError, match=re.escape(needle)):
        FeederSpec.model_validate(_spec(network))


def test_bundled_epri_ckt7_feeder_loads() -> None:
    from gridplan.grid.feeders import load_feeder

    feeder = load_feeder("epri-ckt7")
    assert feeder.load_p_kw.shape == (8760, 906)
    assert feeder.step_h == 1.0
    assert (feeder.assets.kind == "trafo").sum() == 161
    assert feeder.assets.loc[feeder.assets.kind == "line", "name"].tolist() == ["333"]
    assert len(feeder.upgrades) > 0
    assert feeder.households.sum() > 0
    # the feeder-equivalent loads on the 12.47 kV substation bus serve no household
    primary = feeder.net.load.profile.to_numpy() == "primary"
    assert primary.sum() >= 18 and feeder.households[primary].sum() == 0


def test_cli_check_prints_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    from gridplan.cli import main

    assert main(["feeders", "--check", "epri-ckt7"]) == 0
    out = capsys.readouterr().out
    assert "feeder-head P" in out and "[nominal] PASS" in out
    assert out.count("] PASS") == 3 and "[peak hour 8584] PASS" in out
    assert main(["feeders", "--check", "lv-rural"]) == 2
    assert "OpenDSS feeders only" in capsys.readouterr().err


def _small_spec(tmp_path: Path, profiles: str) -> Path:
    _feeder(tmp_path)
    spec = tmp_path / "small.toml"
    spec.write_text(
        'name = "small"\n[network]\nsource = "opendss"\nmaster = "feeder/Master.dss"\n'
        f"[profiles]\n{profiles}\n"
        '[households]\nrule = "annual_energy"\nresidential_profiles = ["residential"]\n'
        '[[assets]]\nkind = "trafo"\n',
        encoding="utf-8",
    )
    return spec


def test_opendss_feeder_spec_profiles_and_class_map(tmp_path: Path) -> None:
    from gridplan.grid.feeders import load_feeder

    feeder = load_feeder(_small_spec(tmp_path, 'source = "opendss"'))
    assert feeder.load_p_kw.shape == (8760, 1)
    # the 3-point shape (0.5, 1.0, 0.7) x 10 kW, repeated over the year as OpenDSS does
    assert feeder.load_p_kw[:4, 0].tolist() == pytest.approx([5.0, 10.0, 7.0, 5.0])
    assert feeder.households[0] > 0
    mapped = load_feeder(
        _small_spec(
            tmp_path, 'source = "opendss"\nloadshape_classes = { Residential = "commercial" }'
        )
    )
    assert mapped.net.load.profile.tolist() == ["commercial"]
    assert mapped.households[0] == 0


def test_profile_source_opendss_needs_an_opendss_network() -> None:
    from gridplan.grid.feeders import FeederSpec, build_feeder

    spec = FeederSpec.model_validate(
        {
            "name": "x",
            "network": {"source": "builder", "builder": "us_residential"},
            "profiles": {"source": "opendss"},
            "households": {"rule": "builder"},
            "assets": [{"kind": "trafo"}],
        }
    )
    with pytest.raises(ConfigError, match="profile source 'opendss' needs network source"):
        build_feeder(spec)


@pytest.mark.slow
def test_peak_week_study_on_epri_ckt7_from_the_cli(tmp_path: Path) -> None:
    from gridplan.cli import main

    study = tmp_path / "ckt7.toml"
    study.write_text(
        'name = "ckt7-peak-week"\nfeeder = "epri-ckt7"\nseed = 1\n'
        '[horizon]\nstart = 2026\nend = 2030\ndraws = 5\n[period]\nkind = "peak_week"\n',
        encoding="utf-8",
    )
    assert main(["study", str(study), "--output-dir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "ckt7-peak-week").is_dir()


def test_nested_redirect_reads_the_file_the_scan_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = _feeder(tmp_path, "Redirect sub/a.dss\n")
    (master.parent / "sub").mkdir()
    (master.parent / "sub" / "a.dss").write_text("Redirect b.dss\n")
    (master.parent / "sub" / "b.dss").write_text("New Load.fromsub bus1=b2 kw=7\n")
    (master.parent / "b.dss").write_text("New Load.fromroot bus1=b2 kw=9\n")
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "b.dss").write_text("New Load.fromcwd bus1=b2 kw=11\n")
    monkeypatch.chdir(tmp_path / "cwd")
    assert [p.name for p in opendss.scan_script(master)] == ["Master.dss", "a.dss", "b.dss"]
    assert opendss.convert(master).net.load.name.tolist() == ["ld1", "fromsub"]


PV_AND_COORDS = """\
New Loadshape.solar npts=4 interval=1 mult=(0 0.5 1.0 0.2)
New PVSystem.pv1 bus1=s1.1 phases=1 kv=0.24 Pmpp=8 irradiance=0.9 kVA=6 yearly=solar
New PVSystem.pv2 bus1=s1.1 phases=1 kv=0.24 Pmpp=4 irradiance=1 kVA=4
New Generator.g1 bus1=b2 kv=12.47 kw=50 yearly=residential
Load.ld1.NumCust=3
"""


def test_generation_follows_its_yearly_shape_and_never_a_constant_nameplate(
    tmp_path: Path,
) -> None:
    conv = opendss.convert(_feeder(tmp_path, PV_AND_COORDS))
    names = list(conv.net.sgen.name)
    assert names == ["Generator.g1", "PVSystem.pv1", "PVSystem.pv2"]
    assert conv.sgen_p_kw is not None
    assert conv.sgen_p_kw.shape == (8760, 3)
    # generator: 50 kW x (0.5, 1.0, 0.7) repeated
    assert conv.sgen_p_kw[:4, 0].tolist() == pytest.approx([25.0, 50.0, 35.0, 25.0])
    # PV: Pmpp x irradiance x shape, capped at its kVA: 8 x 0.9 x (0, 0.5, 1, 0.2) -> 6 cap
    assert conv.sgen_p_kw[:4, 1].tolist() == pytest.approx([0.0, 3.6, 6.0, 1.44])
    # PV without a yearly shape: nothing, and the report says so
    assert not conv.sgen_p_kw[:, 2].any()
    assert any("without a yearly loadshape produce nothing" in r for r in conv.report)
    assert conv.loads.customers.tolist() == [3]


def test_feeder_carries_model_coordinates_customers_and_conversion_notes(tmp_path: Path) -> None:
    from gridplan.grid.feeders import load_feeder

    folder = tmp_path / "feeder"
    spec = _small_spec(tmp_path, 'source = "opendss"')
    _feeder(tmp_path, PV_AND_COORDS + "BusCoords coords.csv\n")  # after: _small_spec writes it
    (folder / "coords.csv").write_text("sourcebus, 0, 0\nb2, 100, 0\nb3, 100, 50\n")
    text = spec.read_text().replace('rule = "annual_energy"', 'rule = "customers"')
    spec.write_text(text)
    feeder = load_feeder(spec)
    assert feeder.households.tolist() == [3]  # NumCust of the residential load
    assert feeder.sgen_p_kw[:4, 1].tolist() == pytest.approx([0.0, 3.6, 6.0, 1.44])
    assert feeder.bus_geo is None  # no CRS is known: never labelled EPSG:4326
    assert feeder.bus_xy is not None
    xy = feeder.bus_xy.set_axis(feeder.net.bus.name.loc[feeder.bus_xy.index].str.lower())
    assert xy.loc["b3"].tolist() == [100.0, 50.0]
    assert any("PVSystem: 1 without a yearly loadshape" in note for note in feeder.notes)

    from gridplan.outputs.figures import model_layout

    layout = model_layout(feeder.net, feeder.bus_xy)
    assert layout is not None
    by_name = layout.set_axis(feeder.net.bus.name.loc[layout.index].str.lower())
    assert by_name.loc["s1"].tolist() == [100.0, 50.0]  # the secondary sits at its pole (b3)


def test_customers_rule_needs_a_customer_count() -> None:
    from gridplan.grid.feeders import FeederSpec, build_feeder

    spec = FeederSpec.model_validate(
        {
            "name": "x",
            "network": {"source": "builder", "builder": "us_residential"},
            "profiles": {"source": "builder"},
            "households": {"rule": "customers"},
            "assets": [{"kind": "trafo"}],
        }
    )
    with pytest.raises(ConfigError, match="customer count"):
        build_feeder(spec)


def test_downstream_table_equals_a_set_test_per_asset() -> None:
    import numpy as np

    from gridplan.grid.feeders import load_feeder
    from gridplan.grid.topology import downstream_buses, downstream_of

    feeder = load_feeder("epri-ckt7")
    down = downstream_buses(feeder)
    ids = list(feeder.assets.index)
    rng = np.random.default_rng(7)
    buses = rng.choice(feeder.net.bus.index.to_numpy(), size=500)
    table = downstream_of(down, ids, buses)
    expected = np.column_stack([np.isin(buses, down[str(a)]) for a in ids])
    assert table.shape == (500, len(ids))
    assert (table == expected).all()
    assert table.any()
    assert downstream_of(down, ids, np.array([], dtype=int)).shape == (0, len(ids))

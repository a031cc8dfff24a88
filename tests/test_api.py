"""The Python API for notebook users: configs given as dicts, validated overrides, ``__all__``."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from gridplan.core.errors import ConfigError
from gridplan.examples import example_path
from gridplan.study import run
from gridplan.study.config import StudyConfig, load_study_config

PACKAGE = Path(__file__).resolve().parents[1] / "gridplan"

SHORT = {
    "name": "api",
    "feeder": "ca-residential",
    "period": {"kind": "range", "start": "2017-07-01", "end": "2017-07-02"},
}


@pytest.fixture(scope="module")
def quickstart() -> StudyConfig:
    """A study as a file gives it (the bundled quick start's kind of sections)."""
    config = load_study_config(example_path("quickstart"))
    return StudyConfig.model_validate(
        {
            "name": "qs",
            "feeder": config.feeder,
            "year": 2030,
            "horizon": {"start": 2026, "end": 2040, "draws": 5},
            "fleet": {
                "v2g_enrolled_share": 0.5,
                "adoption": {"kind": "logistic", "midpoint_year": 2033, "ceiling": 1.2,
                             "steepness": 0.35},
            },
        }
    )  # fmt: skip


def test_with_overrides_sets_dotted_fields(quickstart):
    changed = quickstart.with_overrides({"fleet.v2g_enrolled_share": 0.3, "horizon.draws": 2})
    assert changed.fleet.v2g_enrolled_share == 0.3
    assert changed.horizon.draws == 2
    assert quickstart.fleet.v2g_enrolled_share == 0.5  # the original is unchanged
    assert changed.fleet.adoption == quickstart.fleet.adoption
    # fields the study did not set stay "not set" (the report tells defaults from choices)
    assert changed.model_fields_set == quickstart.model_fields_set
    assert "v2g_enrolled_share" in changed.fleet.model_fields_set
    assert quickstart.with_overrides({}) == quickstart


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"fleet.v2g_enrolled_share": 7.0}, "field 'fleet.v2g_enrolled_share'"),
        ({"fleet.v2g_enroled_share": 0.3}, "did you mean 'v2g_enrolled_share'"),
        ({"horizon.draws": "5"}, "field 'horizon.draws'"),
        ({"year": 2050}, "outside the horizon"),
        ({"fleet..x": 1}, "not a dotted field name"),
    ],
)
def test_with_overrides_validates(quickstart, overrides, needle):
    with pytest.raises(ConfigError) as info:
        quickstart.with_overrides(overrides)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_with_overrides_names_the_file(quickstart, tmp_path):
    with pytest.raises(ConfigError, match=r"^over\.toml: field 'fleet\.export_kw'"):
        quickstart.with_overrides({"fleet.export_kw": -1.0}, file="over.toml")


def test_batch_grid_uses_with_overrides(tmp_path):
    """A batch scenario point is the base study with the point's overrides, validated."""
    from gridplan.batch import plan_batch

    plan = plan_batch(
        {
            "name": "b",
            "feeders": ["ca-residential"],
            "draws": 1,
            "study": {"year": 2030, "fleet": {"v2g_capable_share": 0.5}},
            "grid": {"fleet.v2g_enrolled_share": [0.25, 0.75]},
        },
        base_dir=tmp_path,
    )
    base = StudyConfig.model_validate(
        {"name": "x", "feeder": "x", "year": 2030, "fleet": {"v2g_capable_share": 0.5}}
    )
    for unit, share in zip(plan.units, (0.25, 0.75), strict=True):
        expected = base.with_overrides({"fleet.v2g_enrolled_share": share})
        assert unit.config.fleet == expected.fleet
    with pytest.raises(ConfigError, match=r"field 'grid\.fleet\.v2g_enrolled_share'"):
        plan_batch(
            {"name": "b", "feeders": ["ca-residential"], "grid": {"fleet.v2g_enrolled_share": [7]}},
            base_dir=tmp_path,
        )


def test_run_accepts_a_dict():
    result = run({**SHORT, "fleet": {"v2g_enrolled_share": 0.3}})
    assert result.config.fleet.v2g_enrolled_share == 0.3
    assert result.summary.study == "api"


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({**SHORT, "fleet": {"v2g_enrolled_share": 7.0}}, "field 'fleet.v2g_enrolled_share'"),
        ({"feeder": "ca-residential"}, "field 'name': missing"),
        ({**SHORT, "yeer": 2030}, "did you mean 'year'"),
        (42, "expected a study TOML path, a dict"),
    ],
)
def test_run_rejects_bad_configs_in_one_line(config, needle):
    with pytest.raises(ConfigError) as info:
        run(config)
    assert needle in str(info.value) and "\n" not in str(info.value)


def _public_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if any(p.startswith("_") and p != "__init__" for p in parts) or parts[-1] == "__main__":
            continue
        names.append(".".join(p for p in parts if p != "__init__"))
    return names


@pytest.mark.parametrize("module", _public_modules())
def test_public_module_has_all(module):
    """Every public module says what it exports, and exports only names it has."""
    path = PACKAGE.parent / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    declared = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Name) and t.id == "__all__"
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    assert declared, f"{module} has no __all__"
    mod = importlib.import_module(module)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names what it lacks: {missing}"

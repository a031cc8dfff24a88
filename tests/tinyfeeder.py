"""A tiny feeder for tests: pandapower's four-bus system with CSV profiles written by the
test (a year of quarter-hours), and a short study on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: A tiny feeder: pandapower's four-bus system (one 250 kVA transformer, two loads, two
#: PV units) with a year of quarter-hour profiles written by the test.
FEEDER = """
name = "tiny"
description = "pandapower simple_four_bus_system with test profiles"
growth_rate = 0.0

[network]
source = "pandapower"
function = "simple_four_bus_system"

[profiles]
source = "csv"
path = "{profile}"
pv_path = "{pv}"

[households]
rule = "given"
values = {{ load1 = 10, load2 = 10 }}

[[assets]]
kind = "trafo"
select = {select}
"""

STUDY = """
name = "{name}"
feeder = "tiny.toml"
year = 2030
base_year = 2026
seed = 2

[period]
kind = "range"
start = "2016-07-01"
end = "2016-07-03"

[fleet]
evs_per_household = 0.3
"""


def write_profiles(folder: Path, times: pd.Index, spike: int | None = None) -> tuple[Path, Path]:
    n = len(times)
    hour = (np.arange(n) % 96) / 4.0
    shape = 0.6 + 0.8 * np.exp(-(((hour - 19.0) / 2.5) ** 2))  # evening peak
    load = pd.DataFrame({"time": times, "load1": 10 * shape, "load2": 10 * shape})
    if spike is not None:  # one step 8 times the 250 kVA rating
        load.loc[spike, ["load1", "load2"]] = 1000.0
    sun = np.clip(np.sin((hour - 6.0) / 12.0 * np.pi), 0, None)
    pv = pd.DataFrame({"time": times, "pv1": 20 * sun, "pv2": 15 * sun})
    load.to_csv(folder / "load.csv", index=False)
    pv.to_csv(folder / "pv.csv", index=False)
    return folder / "load.csv", folder / "pv.csv"


def tiny_feeder(folder: Path, times, select: str = '"all"', spike: int | None = None) -> Path:
    load, pv = write_profiles(folder, times, spike)
    path = folder / "tiny.toml"
    path.write_text(FEEDER.format(profile=load.name, pv=pv.name, select=select))
    return path


def tiny_study(folder: Path, name: str = "tiny-study", extra: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name) + extra, encoding="utf-8")
    return path


YEAR = pd.date_range("2016-01-01", "2016-12-31 23:45", freq="15min")

"""Stochastic EV fleets: which loads have EVs, what they are, and how they drive and plug in.

:func:`sample_fleet` draws a :class:`Fleet` for one feeder, scenario and planning year.
Everything is vectorized over EVs and days; every draw goes through one
``numpy.random.Generator``, so the same seed gives the same fleet on any machine.

Default behaviour parameters come from public figures (see each field of
:class:`FleetScenario`): US DOE Vehicle Technologies Office Fact of the Week #1047 (NHTS
2017) for daily miles, fueleconomy.gov/AFDC for efficiency, typical Level 2 charger power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from gridplan.config import StrictModel
from gridplan.feeders import Feeder

RNGLike = np.random.Generator | int | None


def as_generator(rng: RNGLike) -> np.random.Generator:
    """Return ``rng`` if it is a Generator, else ``numpy.random.default_rng(rng)``."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class FleetScenario(StrictModel):
    """EV population and behaviour parameters (all with units in their names).

    Defaults and their sources:

    - ``daily_miles_mean = 30``: one-vehicle households drive about 30 mi/day (US DOE VTO
      Fact of the Week #1047, from NHTS 2017).
    - ``efficiency_kwh_per_mi = 0.30``: mid-range of 0.25-0.46 kWh/mi of current EVs
      (fueleconomy.gov via AFDC; e.g. Chevy Bolt 3.57 mi/kWh = 0.28 kWh/mi).
    - ``charger_kw = 7.2``: a common Level 2 home charger (Level 2: 3.3-11.5 kW, AFDC).
    - ``export_kw = 9.6``: Ford F-150 Lightning export through the 80 A Charge Station Pro.
    - ``battery_kwh = 75``: usable capacity of a mid-size BEV (assumption; F-150
      Lightning up to 131 kWh, Kia EV9 76-100 kWh).
    - ``reserve_soc = 0.2``: typical reserve state of charge in V2G programs and studies.
    - ``charge_efficiency = 0.9``: typical AC charging efficiency.
    - ``arrival_mean_h = 17.5``, ``departure_mean_h = 7.5``: end of last trip home and start
      of first trip from home (NHTS trip records); spreads are assumptions.
    """

    evs_per_household: float = Field(default=0.5, ge=0, le=10, allow_inf_nan=False)
    v2g_capable_share: float = Field(default=0.5, ge=0, le=1)
    v2g_enrolled_share: float = Field(default=0.5, ge=0, le=1)
    battery_kwh: float = Field(default=75.0, gt=0, le=1000)
    efficiency_kwh_per_mi: float = Field(default=0.30, gt=0, le=5)
    charger_kw: float = Field(default=7.2, gt=0, le=500)
    export_kw: float = Field(default=9.6, ge=0, le=500)
    reserve_soc: float = Field(default=0.2, ge=0, lt=1)
    target_soc: float = Field(default=0.9, gt=0, le=1)
    charge_efficiency: float = Field(default=0.9, gt=0, le=1)
    discharge_efficiency: float = Field(default=0.9, gt=0, le=1)
    daily_miles_mean: float = Field(default=30.0, ge=0, le=1000)
    daily_miles_sd: float = Field(default=15.0, ge=0, le=1000)
    arrival_mean_h: float = Field(default=17.5, ge=0, lt=24)
    arrival_sd_h: float = Field(default=2.0, ge=0, le=12)
    departure_mean_h: float = Field(default=7.5, ge=0, lt=24)
    departure_sd_h: float = Field(default=1.0, ge=0, le=12)

    @model_validator(mode="after")
    def _consistent(self) -> FleetScenario:
        if self.target_soc <= self.reserve_soc:
            raise ValueError(
                f"target_soc ({self.target_soc}) must be above reserve_soc ({self.reserve_soc})"
            )
        return self


@dataclass(frozen=True, eq=False)
class Fleet:
    """A sampled EV fleet: arrays over EVs and (day, EV).

    Attributes
    ----------
    year
        Planning year the fleet was drawn for.
    load_pos
        Position of each EV's home load in ``net.load.index`` order, shape (ev,).
    bus
        Bus index of each EV's home, shape (ev,).
    battery_kwh
        Usable battery capacity [kWh], shape (ev,).
    charger_kw
        Charging power limit (charger and vehicle) [kW], shape (ev,).
    export_kw
        V2G export limit [kW], 0 for EVs not enrolled in V2G, shape (ev,).
    v2g_enrolled
        Whether each EV is V2G-capable and enrolled, shape (ev,).
    reserve_kwh, target_kwh
        Reserve energy (never discharged below by V2G) and departure target [kWh], (ev,).
    charge_efficiency, discharge_efficiency
        Grid-to-battery and battery-to-grid efficiencies [-].
    days
        Midnight of each simulated day, shape (day,).
    arrival_h
        Arrival home, hours after that day's midnight [h], shape (day, ev).
    departure_h
        Departure, hours after that day's midnight (> 24 means the next morning) [h],
        shape (day, ev). Always after arrival and before the next day's arrival.
    trip_kwh
        Energy driven before each arrival [kWh], shape (day, ev); capped at target less
        reserve (see ``trip_shortfall_kwh``).
    trip_shortfall_kwh
        Driving energy that the cap removed [kWh], shape (day, ev); reported, never dropped.
    """

    year: int
    load_pos: np.ndarray
    bus: np.ndarray
    battery_kwh: np.ndarray
    charger_kw: np.ndarray
    export_kw: np.ndarray
    v2g_enrolled: np.ndarray
    reserve_kwh: np.ndarray
    target_kwh: np.ndarray
    charge_efficiency: float
    discharge_efficiency: float
    days: pd.DatetimeIndex
    arrival_h: np.ndarray
    departure_h: np.ndarray
    trip_kwh: np.ndarray
    trip_shortfall_kwh: np.ndarray

    @property
    def n_ev(self) -> int:
        """Number of EVs."""
        return int(self.load_pos.size)

    def evs_per_load(self, n_loads: int) -> np.ndarray:
        """Count of EVs at each load, shape (load,)."""
        return np.bincount(self.load_pos, minlength=n_loads)


def sample_fleet(feeder: Feeder, scenario: FleetScenario, year: int, rng: RNGLike = None) -> Fleet:
    """Draw an EV fleet for ``feeder`` in planning ``year``.

    EV counts per load are Poisson with mean ``evs_per_household × households`` (expected
    totals hold; draws differ). Each EV is V2G-capable with probability
    ``v2g_capable_share`` and, if capable, enrolled with ``v2g_enrolled_share``. For every
    day of the feeder's profile year, arrival and departure times are normal draws (wrapped
    to the clock, departure next morning, at least 30 min after arrival and 30 min before
    the next arrival) and daily miles are gamma-distributed with the given mean and spread.

    Parameters
    ----------
    feeder
        The feeder (households per load, profile days).
    scenario
        Population and behaviour parameters.
    year
        Planning year (recorded; adoption trajectories by year are added by later work).
    rng
        Generator or seed.

    Returns
    -------
    Fleet
    """
    gen = as_generator(rng)
    households = np.asarray(feeder.households, dtype=float)
    counts = gen.poisson(scenario.evs_per_household * households)
    load_pos = np.repeat(np.arange(households.size), counts)
    n_ev = load_pos.size
    bus = feeder.load_bus[load_pos] if n_ev else np.zeros(0, dtype=int)
    capable = gen.random(n_ev) < scenario.v2g_capable_share
    enrolled = capable & (gen.random(n_ev) < scenario.v2g_enrolled_share)
    battery = np.full(n_ev, scenario.battery_kwh)
    days = pd.DatetimeIndex(pd.Index(feeder.time_index.normalize()).unique(), name="day")
    n_day = days.size
    arrival = (gen.normal(scenario.arrival_mean_h, scenario.arrival_sd_h, (n_day, n_ev))) % 24
    departure = (
        24 + gen.normal(scenario.departure_mean_h, scenario.departure_sd_h, (n_day, n_ev)) % 24
    )
    # Keep each plug-in window inside [arrival + 0.5 h, next arrival - 0.5 h].
    next_arrival = np.vstack([arrival[1:] + 24, np.full((1, n_ev), 48.0)])
    departure = np.clip(departure, arrival + 0.5, next_arrival - 0.5)
    miles = _gamma(gen, scenario.daily_miles_mean, scenario.daily_miles_sd, (n_day, n_ev))
    trip = miles * scenario.efficiency_kwh_per_mi
    usable = (scenario.target_soc - scenario.reserve_soc) * battery
    trip_capped = np.minimum(trip, usable)
    return Fleet(
        year=int(year),
        load_pos=load_pos,
        bus=np.asarray(bus),
        battery_kwh=battery,
        charger_kw=np.full(n_ev, scenario.charger_kw),
        export_kw=np.where(enrolled, scenario.export_kw, 0.0),
        v2g_enrolled=enrolled,
        reserve_kwh=scenario.reserve_soc * battery,
        target_kwh=scenario.target_soc * battery,
        charge_efficiency=scenario.charge_efficiency,
        discharge_efficiency=scenario.discharge_efficiency,
        days=days,
        arrival_h=arrival,
        departure_h=departure,
        trip_kwh=trip_capped,
        trip_shortfall_kwh=trip - trip_capped,
    )


def _gamma(gen: np.random.Generator, mean: float, sd: float, size: tuple[int, int]) -> np.ndarray:
    """Gamma draws with a given mean and standard deviation (exact mean when sd = 0)."""
    if mean <= 0:
        return np.zeros(size)
    if sd <= 0:
        return np.full(size, mean)
    shape = (mean / sd) ** 2
    return gen.gamma(shape, mean / shape, size)

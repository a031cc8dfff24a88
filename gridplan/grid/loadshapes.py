"""California load shapes of documented US origin: DOE/OpenEI TMY3 profiles for Long Beach.

Source data (bundled in ``gridplan/data/loadshapes/doe-tmy3-long-beach/``, see its README):
US DOE / OpenEI, "Commercial and Residential Hourly Load Profiles for all TMY3 Locations in
the United States" (EnergyPlus simulations on TMY3 weather; licence CC BY 4.0), location
Long Beach-Daugherty Field, CA (TMY3 station 722970, ASHRAE climate zone 3B):

- residential BASE, HIGH and LOW load levels of one single-family home;
- eight DOE commercial reference buildings (new construction 2004) in climate zone 3B.

Each file holds one **typical year** (TMY3: months drawn from different historic years), not
a calendar year. Rows are hourly averages with hour-ending stamps ``MM/DD  HH:00:00``
(01:00 ... 24:00), local standard time. gridplan puts them on a fixed-step
:class:`pandas.DatetimeIndex` labelled by interval *start* (the value of hour ending 01:00 is
labelled 00:00) in the nominal year :data:`TYPICAL_YEAR` (a non-leap year whose 1 January is
a Sunday, like the DOE commercial schedules); :data:`TYPICAL_YEAR_LABEL` says so in words.

Per-customer residential profiles come from :func:`customer_profiles`, whose diversity
method is calibrated against Kersting's diversity-factor table (:data:`KERSTING_DIVERSITY`).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridplan.core.errors import ConfigError

__all__ = [
    "COMMERCIAL_BUILDINGS",
    "COOLING_COLUMN",
    "DATA_DIR",
    "HOURS_PER_YEAR",
    "KERSTING_DIVERSITY",
    "RESIDENTIAL_VARIANTS",
    "TIME_COLUMN",
    "TOTAL_COLUMN",
    "TYPICAL_YEAR",
    "TYPICAL_YEAR_LABEL",
    "DiversityMethod",
    "coincidence_factor",
    "commercial_shapes",
    "customer_profiles",
    "read_doe_loadshape",
    "residential_shapes",
    "to_step",
    "typical_year_index",
]

#: Folder of the bundled DOE/OpenEI Long Beach load shapes.
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "loadshapes" / "doe-tmy3-long-beach"

#: Whole-building electric load column of the DOE files [kW].
TOTAL_COLUMN = "Electricity:Facility [kW](Hourly)"
#: Cooling end use column (residential files only) [kW].
COOLING_COLUMN = "Cooling:Electricity [kW](Hourly)"
TIME_COLUMN = "Date/Time"

_RESIDENTIAL_STEM = "USA_CA_Long.Beach-Daugherty.Field.722970_TMY3_{}.csv.gz"
#: Residential load levels of the DOE data set (one home; BASE about 8,330 kWh/yr).
RESIDENTIAL_VARIANTS = ("BASE", "HIGH", "LOW")

_COMMERCIAL_STEM = "commercial/RefBldg{}New2004_7.1_5.0_3B_USA_CA_LOS_ANGELES.csv.gz"
#: DOE commercial reference buildings (new construction 2004, climate zone 3B).
COMMERCIAL_BUILDINGS = {
    "small_office": "SmallOffice",
    "medium_office": "MediumOffice",
    "standalone_retail": "Stand-aloneRetail",
    "strip_mall": "StripMall",
    "primary_school": "PrimarySchool",
    "midrise_apartment": "MidriseApartment",
    "supermarket": "SuperMarket",
    "quick_service_restaurant": "QuickServiceRestaurant",
}

#: Nominal year of the typical-year index: non-leap, 1 January a Sunday (as the DOE
#: commercial schedules assume). It is a label, not the year the weather happened.
TYPICAL_YEAR = 2017
#: How reports should name the time axis of these profiles.
TYPICAL_YEAR_LABEL = "TMY3 typical year (Long Beach, CA); dates are nominal, not a calendar year"
HOURS_PER_YEAR = 8760

#: Diversity factors (sum of individual maximum demands / maximum diversified demand) of
#: residential customers: W. H. Kersting, *Distribution System Modeling and Analysis*
#: (CRC Press; 2nd ed. 2006 and later editions), chapter 2 "The Nature of Loads",
#: Table 2.2 "Diversity factors" (15-minute demands), for groups of 1, 5 and 10 customers:
#: 1.00, 2.20, 2.65. The 50-customer value 3.15 lies on the same table's flat tail (which
#: reaches 3.20 at 70 customers); it was not re-checked against the printed page here.
#: Coincidence factor = 1 / diversity factor.
KERSTING_DIVERSITY = {1: 1.00, 5: 2.20, 10: 2.65, 50: 3.15}

_SHAPE_CACHE: dict[tuple[str, str], npt.NDArray[np.float64]] = {}


def typical_year_index(step_minutes: int = 60) -> pd.DatetimeIndex:
    """Fixed-step index of the typical year, labelled by interval start.

    Parameters
    ----------
    step_minutes
        Step [min]: 15, 30 or 60.

    Returns
    -------
    pandas.DatetimeIndex
        ``8760 * 60 / step_minutes`` stamps from ``TYPICAL_YEAR-01-01 00:00``, named
        ``"time"``, tz-naive local standard time (UTC-8 for Long Beach).
    """
    _check_step(step_minutes)
    periods = HOURS_PER_YEAR * 60 // step_minutes
    return pd.date_range(
        f"{TYPICAL_YEAR}-01-01", periods=periods, freq=f"{step_minutes}min", name="time"
    )


def _check_step(step_minutes: int) -> None:
    if isinstance(step_minutes, bool) or step_minutes not in (15, 30, 60):
        raise ConfigError(f"got {step_minutes!r}; expected 15, 30 or 60", field="step_minutes")


def read_doe_loadshape(path: str | Path, column: str = TOTAL_COLUMN) -> npt.NDArray[np.float64]:
    """Read one column of a DOE/OpenEI TMY3 load profile file.

    Parameters
    ----------
    path
        A ``.csv`` or ``.csv.gz`` file in the DOE layout (``Date/Time`` plus end-use columns).
    column
        Column to read, e.g. :data:`TOTAL_COLUMN` [kW].

    Returns
    -------
    numpy.ndarray
        8,760 hourly mean demands [kW], hour ending 01:00 on 1 January first (a file
        that starts later in the year and wraps round is rolled into that order).

    Raises
    ------
    ConfigError
        Missing column, not 8,760 rows, stamps not the hour-ending sequence of a non-leap
        year, or a value that is not a finite number >= 0.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        frame = pd.read_csv(handle, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    for name in (TIME_COLUMN, column):
        if name not in frame.columns:
            raise ConfigError(f"column missing; expected '{name}'", file=path, field=name)
    if len(frame) != HOURS_PER_YEAR:
        raise ConfigError(
            f"{len(frame)} rows; expected {HOURS_PER_YEAR} hourly rows of a typical year",
            file=path,
            field=TIME_COLUMN,
        )
    rotation = _hour_ending_rotation(frame[TIME_COLUMN], path)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ConfigError(
            f"row {row + 1}: {frame[column].iloc[row]!r}; expected a finite number >= 0 [kW]",
            file=path,
            field=column,
        )
    return np.roll(values, rotation)


def _expected_stamps() -> npt.NDArray[np.str_]:
    """Hour-ending stamps of the DOE files, ``01/01  01:00:00`` ... ``12/31  24:00:00``."""
    start = typical_year_index(60)
    text = [f"{t.month:02d}/{t.day:02d}  {t.hour + 1:02d}:00:00" for t in start]
    return np.asarray(text)


def _hour_ending_rotation(stamps: pd.Series, path: Path) -> int:
    """Rows to roll so that the file starts at hour ending 01:00 on 1 January.

    Two DOE commercial files (stand-alone retail, strip mall) start on 2 January and wrap
    round to 1 January at the end; their rows are rolled back into calendar order.
    """
    expected = _expected_stamps()
    got = stamps.astype(str).str.strip().str.replace(r"\s+", "  ", regex=True).to_numpy()
    first = np.flatnonzero(expected == got[0])
    rotation = int(first[0]) if first.size else 0
    mismatch = np.flatnonzero(got != np.roll(expected, -rotation))
    if mismatch.size:
        row = int(mismatch[0])
        raise ConfigError(
            f"row {row + 1}: {stamps.iloc[row]!r}; expected hour-ending stamps of a non-leap"
            " typical year ('01/01  01:00:00' ... '12/31  24:00:00', in order)",
            file=path,
            field=TIME_COLUMN,
        )
    return rotation


def _cached(kind: str, key: str, column: str) -> npt.NDArray[np.float64]:
    stem = _RESIDENTIAL_STEM.format(key) if kind == "residential" else _COMMERCIAL_STEM.format(key)
    cache_key = (stem, column)
    if cache_key not in _SHAPE_CACHE:
        _SHAPE_CACHE[cache_key] = read_doe_loadshape(DATA_DIR / stem, column)
    return _SHAPE_CACHE[cache_key].copy()


def residential_shapes(column: str = TOTAL_COLUMN, step_minutes: int = 60) -> pd.DataFrame:
    """The DOE Long Beach residential BASE, HIGH and LOW profiles.

    Parameters
    ----------
    column
        :data:`TOTAL_COLUMN` (whole home) or :data:`COOLING_COLUMN` [kW].
    step_minutes
        60 (the data as published) or 15/30 (interpolated with :func:`to_step`) [min].

    Returns
    -------
    pandas.DataFrame
        Columns ``BASE``, ``HIGH``, ``LOW`` [kW] on :func:`typical_year_index`.
    """
    hourly = np.column_stack([_cached("residential", v, column) for v in RESIDENTIAL_VARIANTS])
    return pd.DataFrame(
        to_step(hourly, step_minutes),
        columns=list(RESIDENTIAL_VARIANTS),
        index=typical_year_index(step_minutes),
    )


def commercial_shapes(step_minutes: int = 60) -> pd.DataFrame:
    """Whole-building load of the eight DOE commercial reference buildings.

    Parameters
    ----------
    step_minutes
        60 (the data as published) or 15/30 (interpolated with :func:`to_step`) [min].

    Returns
    -------
    pandas.DataFrame
        One column per key of :data:`COMMERCIAL_BUILDINGS` [kW], on
        :func:`typical_year_index`.
    """
    hourly = np.column_stack(
        [_cached("commercial", v, TOTAL_COLUMN) for v in COMMERCIAL_BUILDINGS.values()]
    )
    return pd.DataFrame(
        to_step(hourly, step_minutes),
        columns=list(COMMERCIAL_BUILDINGS),
        index=typical_year_index(step_minutes),
    )


def to_step(
    hourly_kw: npt.ArrayLike, step_minutes: int = 15, shift_hours: float = 0.0
) -> npt.NDArray[np.float64]:
    """Interpolate hourly means to a finer step, optionally shifted in time.

    Each hourly mean sits at its interval mid-point; values at the mid-points of the new
    intervals are linear interpolations on the circular year (31 December wraps to
    1 January). Without a shift, the annual energy is kept exactly (the interpolation
    weights are symmetric); a shift moves the curve later by ``shift_hours``.

    Parameters
    ----------
    hourly_kw
        8,760 hourly means [kW], shape (time,) or (time, column).
    step_minutes
        Target step [min]: 15, 30 or 60.
    shift_hours
        Delay of the curve [h] (negative: earlier).

    Returns
    -------
    numpy.ndarray
        Values on :func:`typical_year_index` (``step_minutes``) [kW].
    """
    _check_step(step_minutes)
    hourly = np.asarray(hourly_kw, dtype=float)
    if hourly.shape[0] != HOURS_PER_YEAR:
        raise ConfigError(f"{hourly.shape[0]} rows; expected {HOURS_PER_YEAR}", field="hourly_kw")
    if step_minutes == 60 and shift_hours == 0.0:
        return hourly.copy()
    per_hour = 60 // step_minutes
    t_mid = (np.arange(HOURS_PER_YEAR * per_hour) + 0.5) / per_hour - shift_hours
    h_mid = np.arange(HOURS_PER_YEAR) + 0.5
    if hourly.ndim == 1:
        return np.interp(t_mid, h_mid, hourly, period=HOURS_PER_YEAR)
    return np.column_stack(
        [
            np.interp(t_mid, h_mid, hourly[:, j], period=HOURS_PER_YEAR)
            for j in range(hourly.shape[1])
        ]
    )


@dataclass(frozen=True)
class DiversityMethod:
    """How :func:`customer_profiles` makes customers differ (calibrated, see there).

    Attributes
    ----------
    variant_shares
        Share of customers on each DOE residential variant (BASE, HIGH, LOW) [-]; the
        variant sets the *shape* only (each is rescaled to the customer's annual energy).
        Assumption: half on the typical BASE home, a quarter each on HIGH and LOW.
    max_shift_min
        Each customer's curve is delayed by a uniform draw in
        ``[-max_shift_min, +max_shift_min]`` [min] (different household routines).
    noise_shape
        Shape ``k`` of the multiplicative gamma noise (mean 1, variance ``1/k``) [-];
        it stands for appliance use the simulated home averages away.
    noise_block_h
        The noise is held for blocks of this length [h] (an episode of use), with a
        random phase per customer.
    """

    variant_shares: tuple[float, float, float] = (0.5, 0.25, 0.25)
    max_shift_min: float = 30.0
    noise_shape: float = 1.6
    noise_block_h: float = 3.0


def customer_profiles(
    annual_kwh: Sequence[float] | npt.ArrayLike,
    rng: np.random.Generator | int | None = None,
    *,
    step_minutes: int = 15,
    method: DiversityMethod | None = None,
) -> npt.NDArray[np.float64]:
    """Diverse residential load profiles, one per customer, from the DOE Long Beach shapes.

    Method (all draws from ``rng``, in this order): each customer gets a DOE residential
    variant (``method.variant_shares``), a time shift (uniform within
    ``+/- method.max_shift_min``), and a multiplicative gamma noise of mean 1 and shape
    ``method.noise_shape`` held over blocks of ``method.noise_block_h`` hours with a random
    phase. The result is rescaled so that each customer's annual energy is its
    ``annual_kwh`` exactly.

    Calibration: the defaults were chosen so that the coincidence factor (maximum
    diversified demand / sum of individual maximum demands, 15-minute demands) of groups of
    1, 5, 10 and 50 customers is within 10 % of ``1 / KERSTING_DIVERSITY[n]``, i.e.
    1.00, 0.455, 0.377 and 0.317 (Kersting, *Distribution System Modeling and Analysis*,
    Table 2.2; see :data:`KERSTING_DIVERSITY`). ``tests/test_loadshapes.py`` checks it on
    the mean of 40 random groups drawn from 200 customers of 6,250 kWh/yr (seed 2026):
    1.000, 0.494, 0.400 and 0.307 (+0 %, +8.7 %, +6.1 %, -3.2 %). Single groups scatter
    widely (a group of 5 from about 0.40 to 0.70), and the method's factor falls a little
    faster from 5 to 50 customers than the table's.

    Parameters
    ----------
    annual_kwh
        Annual energy per customer [kWh/yr], each > 0 and finite.
    rng
        Generator or seed.
    step_minutes
        Step of the result [min]: 15, 30 or 60.
    method
        Diversity parameters; default :class:`DiversityMethod`.

    Returns
    -------
    numpy.ndarray
        Demand [kW], shape (time, customer), on :func:`typical_year_index` (``step_minutes``).

    Raises
    ------
    ConfigError
        A bad ``annual_kwh``, ``step_minutes`` or method parameter.
    """
    energy_kwh = _check_annual_kwh(annual_kwh)
    method = method or DiversityMethod()
    _check_method(method, step_minutes)
    gen = np.random.default_rng(rng)
    shapes = residential_shapes().to_numpy()
    shapes = shapes / shapes.sum(axis=0)
    n = energy_kwh.size
    variant = gen.choice(len(RESIDENTIAL_VARIANTS), size=n, p=np.asarray(method.variant_shares))
    shift_h = gen.uniform(-method.max_shift_min, method.max_shift_min, size=n) / 60.0
    per_hour = 60 // step_minutes
    n_steps = HOURS_PER_YEAR * per_hour
    block = max(1, round(method.noise_block_h * per_hour))
    n_blocks = -(-n_steps // block) + 1
    step_h = step_minutes / 60.0
    out = np.empty((n_steps, n))
    for i in range(n):
        curve = to_step(shapes[:, variant[i]], step_minutes, shift_h[i])
        phase = int(gen.integers(block))
        noise = np.repeat(gen.gamma(method.noise_shape, 1.0 / method.noise_shape, n_blocks), block)
        curve = curve * noise[phase : phase + n_steps]
        out[:, i] = curve * (energy_kwh[i] / (curve.sum() * step_h))
    return out


def _check_annual_kwh(annual_kwh: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    try:
        energy = np.atleast_1d(np.asarray(annual_kwh, dtype=float))
    except (TypeError, ValueError):
        raise ConfigError(
            f"got {annual_kwh!r}; expected numbers > 0 [kWh/yr]", field="annual_kwh"
        ) from None
    if energy.ndim != 1 or not np.all(np.isfinite(energy) & (energy > 0)):
        raise ConfigError(
            "expected a list of finite numbers > 0 [kWh/yr], one per customer",
            field="annual_kwh",
        )
    return energy


def _check_method(method: DiversityMethod, step_minutes: int) -> None:
    _check_step(step_minutes)
    shares = np.asarray(method.variant_shares, dtype=float)
    if shares.shape != (3,) or np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
        raise ConfigError(
            f"got {method.variant_shares!r}; expected three shares >= 0 summing to 1",
            field="variant_shares",
        )
    checks = {
        "max_shift_min": (method.max_shift_min, 0.0, 180.0),
        "noise_shape": (method.noise_shape, 1e-3, 1e6),
        "noise_block_h": (method.noise_block_h, 0.0, 24.0),
    }
    for name, (value, low, high) in checks.items():
        if not (np.isfinite(value) and low <= value <= high):
            raise ConfigError(f"got {value!r}; expected a number in [{low}, {high}]", field=name)


def coincidence_factor(profiles_kw: npt.ArrayLike) -> float:
    """Maximum diversified demand over the sum of individual maximum demands [-].

    Parameters
    ----------
    profiles_kw
        Demand [kW], shape (time, customer).
    """
    profiles = np.asarray(profiles_kw, dtype=float)
    return float(profiles.sum(axis=1).max() / profiles.max(axis=0).sum())

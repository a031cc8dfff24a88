"""Time-of-use rates and V2G event calendars: when EVs should charge and when they export.

Two kinds of time windows drive :mod:`gridplan.ev.dispatch`:

- a :class:`TouRate` names the peak and partial-peak windows of a time-of-use rate; every
  hour no window covers is off-peak. The ``tou`` strategy starts charging at the off-peak
  window. Default: PG&E's EV2-A rate (:data:`PGE_EV2A`, file
  ``gridplan/data/rates/pge-ev2a.toml``).
- an :class:`EventCalendar` lists V2G events (date, start hour, end hour). It is read from a
  CSV file (:meth:`EventCalendar.read_csv`), drawn at random within a program's rules
  (:func:`draw_event_calendar`, default the CPUC Emergency Load Reduction Program,
  :data:`ELRP`), or spans every day of some months (:meth:`EventCalendar.every_day`).

Windows are hours of the local clock, ``0 <= start_h < end_h <= 24``; a window across
midnight is written as two windows (``21-24`` and ``0-3``). Overlapping windows, windows
outside the day, and events outside their program are errors that name the file and the
field (:class:`~gridplan.core.errors.ConfigError`), raised when the rate or calendar is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from gridplan.core.config import StrictModel, read_toml, validate
from gridplan.core.errors import ConfigError
from gridplan.core.io import require_file

__all__ = [
    "ALL_MONTHS",
    "DAY_KINDS",
    "ELRP",
    "ELRP_WINDOW_END_H",
    "ELRP_WINDOW_START_H",
    "PERIODS",
    "PGE_EV2A",
    "RATES_DIR",
    "EventCalendar",
    "EventProgram",
    "RNGLike",
    "RateWindow",
    "TouRate",
    "bundled_rates",
    "check_months",
    "check_window",
    "draw_event_calendar",
    "load_rate",
]

RNGLike = np.random.Generator | int | None

#: Rate periods, from cheapest to dearest; hours that no window covers are ``off_peak``.
PERIODS = ("off_peak", "partial_peak", "peak")
DAY_KINDS = ("all", "weekdays", "weekends")
ALL_MONTHS = tuple(range(1, 13))

RATES_DIR = Path(__file__).resolve().parents[1] / "data" / "rates"


def _hours(time_index: pd.DatetimeIndex) -> np.ndarray:
    """Hour of the day of each stamp, with minutes as a fraction [h]."""
    return np.asarray(time_index.hour + time_index.minute / 60.0 + time_index.second / 3600.0)


def check_window(
    start_h: float, end_h: float, *, file: str | Path | None = None, field: str = "window"
) -> None:
    """Raise :class:`ConfigError` unless ``0 <= start_h < end_h <= 24`` (finite numbers)."""
    if not (math.isfinite(start_h) and math.isfinite(end_h)):
        raise ConfigError(
            f"window hours must be finite numbers (got {start_h}-{end_h})", file=file, field=field
        )
    if not 0 <= start_h < end_h <= 24:
        raise ConfigError(
            f"impossible window {start_h:g}-{end_h:g} h (expected 0 <= start_h < end_h <= 24; "
            "write a window across midnight as two windows)",
            file=file,
            field=field,
        )


def check_months(
    months: Iterable[int], *, file: str | Path | None = None, field: str = "months"
) -> tuple[int, ...]:
    """Validate month numbers (1-12, no repeats, at least one); return them as a tuple."""
    out = tuple(int(m) for m in months)
    if not out:
        raise ConfigError("needs at least one month (expected 1-12)", file=file, field=field)
    bad = [m for m in out if not 1 <= m <= 12]
    if bad:
        raise ConfigError(f"month {bad[0]} is not 1-12", file=file, field=field)
    if len(set(out)) != len(out):
        raise ConfigError("a month is listed twice", file=file, field=field)
    return out


# --------------------------------------------------------------------------- TOU rates
@dataclass(frozen=True)
class RateWindow:
    """One priced window of a time-of-use rate.

    Attributes
    ----------
    period
        ``"peak"`` or ``"partial_peak"`` (or ``"off_peak"`` to state it explicitly).
    start_h, end_h
        Window, hours of the day [h], ``0 <= start_h < end_h <= 24``.
    months
        Months in which the window applies (1-12).
    days
        ``"all"``, ``"weekdays"`` (Monday-Friday) or ``"weekends"``.
    """

    period: Literal["off_peak", "partial_peak", "peak"]
    start_h: float
    end_h: float
    months: tuple[int, ...] = ALL_MONTHS
    days: Literal["all", "weekdays", "weekends"] = "all"

    def applies(self, time_index: pd.DatetimeIndex) -> np.ndarray:
        """Whether each stamp falls inside this window, shape (time,)."""
        hours = _hours(time_index)
        inside = (hours >= self.start_h) & (hours < self.end_h)
        inside &= np.isin(np.asarray(time_index.month), self.months)
        weekday = np.asarray(time_index.dayofweek) < 5
        if self.days == "weekdays":
            inside &= weekday
        elif self.days == "weekends":
            inside &= ~weekday
        return np.asarray(inside, dtype=bool)


def _windows_overlap(a: RateWindow, b: RateWindow) -> bool:
    if a.start_h >= b.end_h or b.start_h >= a.end_h:
        return False
    if not set(a.months) & set(b.months):
        return False
    return a.days == "all" or b.days == "all" or a.days == b.days


@dataclass(frozen=True)
class TouRate:
    """A time-of-use rate: its priced windows; hours no window covers are off-peak.

    Attributes
    ----------
    name
        Rate name, e.g. ``"PG&E EV2-A"``.
    source
        Where the windows come from (tariff schedule).
    windows
        The rate's windows; no two may overlap on the same hour, month and day kind.
    file
        File the rate was read from (``None`` for rates built in Python).

    Raises
    ------
    ConfigError
        On an impossible window, an unknown period or day kind, bad months, or overlapping
        windows (the message names the file and ``windows[i]``).
    """

    name: str
    source: str
    windows: tuple[RateWindow, ...]
    file: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.windows:
            raise ConfigError("a rate needs at least one window", file=self.file, field="windows")
        for i, w in enumerate(self.windows):
            where = f"windows[{i}]"
            if w.period not in PERIODS:
                raise ConfigError(
                    f"unknown period '{w.period}' (expected one of: {', '.join(PERIODS)})",
                    file=self.file,
                    field=f"{where}.period",
                )
            if w.days not in DAY_KINDS:
                raise ConfigError(
                    f"unknown day kind '{w.days}' (expected one of: {', '.join(DAY_KINDS)})",
                    file=self.file,
                    field=f"{where}.days",
                )
            check_window(w.start_h, w.end_h, file=self.file, field=where)
            check_months(w.months, file=self.file, field=f"{where}.months")
            for j in range(i):
                if _windows_overlap(self.windows[j], w):
                    o = self.windows[j]
                    raise ConfigError(
                        f"{w.period} {w.start_h:g}-{w.end_h:g} h overlaps windows[{j}] "
                        f"({o.period} {o.start_h:g}-{o.end_h:g} h); expected windows that "
                        "do not overlap",
                        file=self.file,
                        field=where,
                    )

    def period_codes(self, time_index: pd.DatetimeIndex) -> np.ndarray:
        """Period of each stamp as an index into :data:`PERIODS` (0 = off-peak), (time,)."""
        codes = np.zeros(len(time_index), dtype=np.int8)
        for w in self.windows:
            codes[w.applies(time_index)] = PERIODS.index(w.period)
        return codes

    def off_peak(self, time_index: pd.DatetimeIndex) -> np.ndarray:
        """Whether each stamp is off-peak, shape (time,)."""
        return self.period_codes(time_index) == 0


class _WindowSpec(StrictModel):
    period: Literal["off_peak", "partial_peak", "peak"]
    start_h: float = Field(allow_inf_nan=False)
    end_h: float = Field(allow_inf_nan=False)
    months: list[int] = Field(default_factory=lambda: list(ALL_MONTHS))
    days: Literal["all", "weekdays", "weekends"] = "all"


class _RateSpec(StrictModel):
    name: str = Field(min_length=1)
    source: str = Field(min_length=1)
    windows: list[_WindowSpec] = Field(min_length=1)


def bundled_rates() -> dict[str, Path]:
    """Names and paths of the rate files shipped in ``gridplan/data/rates``."""
    return {p.stem: p for p in sorted(RATES_DIR.glob("*.toml"))}


def load_rate(name_or_path: str | Path) -> TouRate:
    """Read a time-of-use rate from a bundled name (``"pge-ev2a"``) or a TOML file.

    The file holds ``name``, ``source`` and ``[[windows]]`` tables with ``period``
    (``peak``, ``partial_peak`` or ``off_peak``), ``start_h``, ``end_h``, optional
    ``months`` (default all) and ``days`` (``all``, ``weekdays``, ``weekends``).

    Raises
    ------
    ConfigError
        Unknown name (the bundled names are listed), unreadable file, or a bad window.
    """
    text = str(name_or_path)
    bundled = bundled_rates()
    if text in bundled:
        path = bundled[text]
    else:
        path = Path(text)
        if path.suffix != ".toml" and not path.exists():
            raise ConfigError(
                f"unknown rate '{text}' (expected a bundled rate: {', '.join(bundled)}, "
                "or a path to a .toml rate file)"
            )
    spec = validate(_RateSpec, read_toml(path), file=path)
    windows = tuple(
        RateWindow(w.period, w.start_h, w.end_h, tuple(w.months), w.days) for w in spec.windows
    )
    return TouRate(spec.name, spec.source, windows, file=str(path))


#: PG&E residential EV rate EV2-A (Electric Schedule EV2, "Residential Time-of-Use Service
#: for Plug-In Electric Vehicle Customers"): peak 4-9 p.m., partial-peak 3-4 p.m. and
#: 9 p.m.-12 a.m., off-peak 12 a.m.-3 p.m., every day of the year. Same windows as
#: ``gridplan/data/rates/pge-ev2a.toml``.
PGE_EV2A = TouRate(
    name="PG&E EV2-A",
    source=(
        "PG&E Electric Schedule EV2 (rate EV2-A), Residential Time-of-Use Service for "
        "Plug-In Electric Vehicle Customers: peak 4-9 p.m., partial-peak 3-4 p.m. and "
        "9 p.m.-12 a.m., off-peak 12 a.m.-3 p.m., every day"
    ),
    windows=(
        RateWindow("partial_peak", 15.0, 16.0),
        RateWindow("peak", 16.0, 21.0),
        RateWindow("partial_peak", 21.0, 24.0),
    ),
)


# --------------------------------------------------------------------------- event programs
@dataclass(frozen=True)
class EventProgram:
    """Rules of a V2G / demand-response event program.

    Attributes
    ----------
    name
        Program name.
    source
        Where the rules come from.
    months
        Months in which events may be called.
    start_h, end_h
        Hours of the day inside which every event lies [h].
    min_duration_h, max_duration_h
        Shortest and longest event [h].
    max_hours_per_year
        Annual dispatch limit [h/yr].
    """

    name: str
    source: str
    months: tuple[int, ...]
    start_h: float
    end_h: float
    min_duration_h: float
    max_duration_h: float
    max_hours_per_year: float

    def __post_init__(self) -> None:
        check_window(self.start_h, self.end_h, field="program window")
        check_months(self.months, field="program months")
        if not 0 < self.min_duration_h <= self.max_duration_h <= self.end_h - self.start_h:
            raise ConfigError(
                "event durations must satisfy 0 < min <= max <= window length "
                f"(got {self.min_duration_h:g}-{self.max_duration_h:g} h)",
                field="program durations",
            )
        if not self.max_hours_per_year > 0:
            raise ConfigError("max_hours_per_year must be > 0", field="max_hours_per_year")


#: ELRP event window, hours of the day [h]: 4 p.m. to 9 p.m. (CPUC Emergency Load
#: Reduction Program, D.21-03-056 and the CPUC ELRP program page). The one place this
#: window is written: :data:`ELRP` uses it, and it is the default V2G event window of
#: :class:`gridplan.ev.dispatch.DispatchOptions` and :meth:`EventCalendar.every_day`.
ELRP_WINDOW_START_H = 16.0
ELRP_WINDOW_END_H = 21.0

#: CPUC Emergency Load Reduction Program (ELRP): events May-October, any day, between
#: 4 p.m. and 9 p.m., 1 to 5 hours each, at most 60 hours per year (CPUC D.21-03-056 and
#: the CPUC ELRP program page; D.23-12-005 shortened the window of sub-groups A.4/A.5,
#: VPP and VGI aggregators, to 3 hours -- build an :class:`EventProgram` with
#: ``max_duration_h=3`` for those).
ELRP = EventProgram(
    name="ELRP",
    source=(
        "CPUC Emergency Load Reduction Program (D.21-03-056, D.21-12-015): May-October, "
        "4-9 p.m., events of 1-5 h, at most 60 h/yr"
    ),
    months=(5, 6, 7, 8, 9, 10),
    start_h=ELRP_WINDOW_START_H,
    end_h=ELRP_WINDOW_END_H,
    min_duration_h=1.0,
    max_duration_h=5.0,
    max_hours_per_year=60.0,
)


# --------------------------------------------------------------------------- event calendars
@dataclass(frozen=True, eq=False)
class EventCalendar:
    """V2G events: one row per event, at most one non-overlapping set per date.

    Attributes
    ----------
    date
        Date of each event (``datetime64[D]``), shape (event,).
    start_h, end_h
        Event start and end, hours of that date [h], shape (event,).
    source
        Where the events come from (file, program and seed, or rule).
    file
        File the events were read from, if any.

    Raises
    ------
    ConfigError
        On an impossible window or events that overlap on the same date (names ``row n``).
    """

    date: np.ndarray
    start_h: np.ndarray
    end_h: np.ndarray
    source: str = ""
    file: str | None = None

    def __post_init__(self) -> None:
        date = np.asarray(self.date, dtype="datetime64[D]")
        start = np.asarray(self.start_h, dtype=float)
        end = np.asarray(self.end_h, dtype=float)
        if not date.shape == start.shape == end.shape or date.ndim != 1:
            raise ConfigError(
                "date, start_h and end_h must be 1-d arrays of one length",
                file=self.file,
                field="events",
            )
        object.__setattr__(self, "date", date)
        object.__setattr__(self, "start_h", start)
        object.__setattr__(self, "end_h", end)
        for i in range(date.size):
            check_window(start[i], end[i], file=self.file, field=f"row {i + 1}")
        order = np.lexsort((start, date))
        same = date[order][1:] == date[order][:-1]
        overlap = same & (start[order][1:] < end[order][:-1])
        if overlap.any():
            k = int(np.flatnonzero(overlap)[0])
            a, b = sorted((int(order[k]), int(order[k + 1])))
            raise ConfigError(
                f"event {start[b]:g}-{end[b]:g} h on {date[b]} overlaps row {a + 1} "
                f"({start[a]:g}-{end[a]:g} h); expected events that do not overlap",
                file=self.file,
                field=f"row {b + 1}",
            )

    @property
    def n_events(self) -> int:
        """Number of events."""
        return int(self.date.size)

    @property
    def hours(self) -> float:
        """Total event hours [h]."""
        return float((self.end_h - self.start_h).sum())

    def hours_per_year(self) -> pd.Series:
        """Event hours per calendar year [h], indexed by year."""
        years = self.date.astype("datetime64[Y]").astype(int) + 1970
        return pd.Series(self.end_h - self.start_h, index=years).groupby(level=0).sum()

    def active(self, time_index: pd.DatetimeIndex) -> np.ndarray:
        """Whether each stamp lies inside an event, shape (time,).

        A step counts as an event step when its start stamp is inside ``[start_h, end_h)``.
        """
        out = np.zeros(len(time_index), dtype=bool)
        if self.n_events == 0 or len(time_index) == 0:
            return out
        days = np.asarray(time_index.normalize().values, dtype="datetime64[D]")
        hours = _hours(time_index)
        order = np.argsort(self.date, kind="stable")
        ev_date, ev_start, ev_end = self.date[order], self.start_h[order], self.end_h[order]
        lo = np.searchsorted(ev_date, days, side="left")
        hi = np.searchsorted(ev_date, days, side="right")
        # at most a few events per date: loop over the k-th event of the date
        k = 0
        while True:
            pos = lo + k
            has = pos < hi
            if not has.any():
                break
            p = pos[has]
            h = hours[has]
            out[np.flatnonzero(has)] |= (h >= ev_start[p]) & (h < ev_end[p])
            k += 1
        return out

    def check_program(self, program: EventProgram) -> None:
        """Raise :class:`ConfigError` if an event breaks ``program``'s rules.

        Checks months, the daily window, event durations and the annual hour limit.
        """
        months = self.date.astype("datetime64[M]").astype(int) % 12 + 1
        duration = self.end_h - self.start_h
        for i in range(self.n_events):
            row = f"row {i + 1}"
            if months[i] not in program.months:
                raise ConfigError(
                    f"event on {self.date[i]} is outside {program.name} months "
                    f"{_month_list(program.months)}",
                    file=self.file,
                    field=row,
                )
            if self.start_h[i] < program.start_h or self.end_h[i] > program.end_h:
                raise ConfigError(
                    f"event {self.start_h[i]:g}-{self.end_h[i]:g} h is outside the "
                    f"{program.name} window {program.start_h:g}-{program.end_h:g} h",
                    file=self.file,
                    field=row,
                )
            if not program.min_duration_h - 1e-9 <= duration[i] <= program.max_duration_h + 1e-9:
                raise ConfigError(
                    f"event of {duration[i]:g} h (expected {program.min_duration_h:g}-"
                    f"{program.max_duration_h:g} h for {program.name})",
                    file=self.file,
                    field=row,
                )
        per_year = self.hours_per_year()
        over = per_year[per_year > program.max_hours_per_year + 1e-9]
        if len(over):
            raise ConfigError(
                f"{over.iloc[0]:g} event hours in {over.index[0]} (expected at most "
                f"{program.max_hours_per_year:g} h/yr for {program.name})",
                file=self.file,
                field="events",
            )

    # ----------------------------------------------------------------------- constructors
    @classmethod
    def read_csv(cls, path: str | Path, *, program: EventProgram | None = None) -> EventCalendar:
        """Read events from a CSV file with columns ``date``, ``start_h``, ``end_h``.

        ``date`` is an ISO date (``2030-08-14``); ``start_h``/``end_h`` are hours of that day
        (``16``, ``19.5``). With ``program`` the events are also checked against its rules
        (:meth:`check_program`).

        Raises
        ------
        ConfigError
            Missing file, wrong columns, unparsable values (``row n``), impossible or
            overlapping windows, or events outside ``program``.
        """
        path = require_file(path, "a CSV file", what="event calendar file")
        try:
            frame = pd.read_csv(path, dtype=str, skipinitialspace=True)
        except UnicodeDecodeError:
            raise ConfigError("not UTF-8 text (expected a UTF-8 CSV)", file=path) from None
        except Exception as exc:
            raise ConfigError(f"cannot read CSV: {exc}", file=path) from None
        expected = ["date", "start_h", "end_h"]
        cols = [str(c).strip() for c in frame.columns]
        if cols != expected:
            raise ConfigError(
                f"columns are {', '.join(cols) or '(none)'} (expected: {', '.join(expected)})",
                file=path,
                field="columns",
            )
        frame.columns = expected
        dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
        start = pd.to_numeric(frame["start_h"], errors="coerce")
        end = pd.to_numeric(frame["end_h"], errors="coerce")
        for name, values, what in (
            ("date", dates, "a date YYYY-MM-DD"),
            ("start_h", start, "an hour 0-24"),
            ("end_h", end, "an hour 0-24"),
        ):
            bad = np.flatnonzero(values.isna().to_numpy())
            if bad.size:
                i = int(bad[0])
                raise ConfigError(
                    f"'{frame[name].iloc[i]}' is not {what}", file=path, field=f"row {i + 1}.{name}"
                )
        calendar = cls(
            date=dates.to_numpy().astype("datetime64[D]"),
            start_h=start.to_numpy(float),
            end_h=end.to_numpy(float),
            source=f"event calendar {path.name}",
            file=str(path),
        )
        if program is not None:
            calendar.check_program(program)
        return calendar

    @classmethod
    def every_day(
        cls,
        days: Sequence[pd.Timestamp] | pd.DatetimeIndex,
        start_h: float = ELRP_WINDOW_START_H,
        end_h: float = ELRP_WINDOW_END_H,
        months: Iterable[int] = ALL_MONTHS,
    ) -> EventCalendar:
        """One event per day of ``days`` whose month is in ``months``, ``start_h-end_h``.

        The rule of :func:`gridplan.ev.dispatch.dispatch` when no calendar is given
        (default 4-9 p.m., the ELRP event window :data:`ELRP_WINDOW_START_H` to
        :data:`ELRP_WINDOW_END_H`, on every day).
        """
        check_window(start_h, end_h, field="window_start_h/window_end_h")
        month_set = check_months(months, field="event_months")
        idx = pd.DatetimeIndex(days).normalize().unique()
        idx = idx[np.isin(np.asarray(idx.month), month_set)]
        n = len(idx)
        return cls(
            date=np.asarray(idx.values, dtype="datetime64[D]"),
            start_h=np.full(n, float(start_h)),
            end_h=np.full(n, float(end_h)),
            source=f"every day {start_h:g}-{end_h:g} h, months {_month_list(month_set)}",
        )


def draw_event_calendar(
    years: int | Iterable[int],
    rng: RNGLike = None,
    *,
    program: EventProgram = ELRP,
    hours_per_year: float | None = None,
    step_h: float = 1.0,
) -> EventCalendar:
    """Draw event days and windows within a program's rules (default ELRP).

    For each year, event days are drawn without replacement from the program's months;
    each event's duration is uniform over ``min_duration_h..max_duration_h`` in steps of
    ``step_h`` and its start uniform over the starts that keep it inside the program window.
    Events are added until the year holds ``hours_per_year`` (default the program's annual
    limit, 60 h for ELRP); the last event is shortened to the remaining hours when at least
    ``min_duration_h`` remain, otherwise dropped.

    Parameters
    ----------
    years
        Calendar year or years to draw.
    rng
        Generator or seed (the same seed gives the same calendar).
    program
        Program rules (default :data:`ELRP`).
    hours_per_year
        Event hours to draw per year [h]; at most ``program.max_hours_per_year``.
    step_h
        Granularity of durations and starts [h] (default whole hours).

    Returns
    -------
    EventCalendar

    Raises
    ------
    ConfigError
        If ``hours_per_year`` is negative or above the program's limit, or ``step_h`` is not
        positive.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    target = program.max_hours_per_year if hours_per_year is None else float(hours_per_year)
    if not 0 <= target <= program.max_hours_per_year + 1e-9:
        raise ConfigError(
            f"hours_per_year {target:g} outside 0-{program.max_hours_per_year:g} h "
            f"({program.name} limit)",
            field="hours_per_year",
        )
    if not step_h > 0:
        raise ConfigError(f"step_h must be > 0 (got {step_h})", field="step_h")
    year_list = [int(years)] if isinstance(years, int | np.integer) else [int(y) for y in years]
    durations = np.arange(program.min_duration_h, program.max_duration_h + 1e-9, step_h)
    dates: list[np.datetime64] = []
    starts: list[float] = []
    ends: list[float] = []
    for year in year_list:
        days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
        days = days[np.isin(np.asarray(days.month), program.months)]
        order = gen.permutation(len(days))
        left = target
        for k in order:
            if left < program.min_duration_h - 1e-9:
                break
            dur = float(gen.choice(durations))
            if dur > left + 1e-9:
                dur = float(np.floor((left + 1e-9) / step_h) * step_h)
                if dur < program.min_duration_h - 1e-9:
                    break
            n_starts = int(np.floor((program.end_h - program.start_h - dur) / step_h + 1e-9)) + 1
            start = program.start_h + step_h * int(gen.integers(n_starts))
            dates.append(np.datetime64(days[k].date(), "D"))
            starts.append(start)
            ends.append(start + dur)
            left -= dur
    order_all = np.argsort(np.asarray(dates, dtype="datetime64[D]"), kind="stable")
    return EventCalendar(
        date=np.asarray(dates, dtype="datetime64[D]")[order_all],
        start_h=np.asarray(starts, dtype=float)[order_all],
        end_h=np.asarray(ends, dtype=float)[order_all],
        source=f"drawn within {program.name} rules, {target:g} h/yr",
    )


def _month_list(months: Iterable[int]) -> str:
    return ",".join(str(m) for m in months)

"""What :func:`gridplan.ev.dispatch.dispatch` runs and its settings: :class:`Strategy`
and :class:`DispatchOptions`, the one place each dispatch default is written."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

import numpy as np
from numpy.typing import DTypeLike

from gridplan.core.errors import ConfigError
from gridplan.ev.events import (
    ALL_MONTHS,
    ELRP_WINDOW_END_H,
    ELRP_WINDOW_START_H,
    check_months,
    check_window,
)

__all__ = ["DEFAULT_DISPATCH_OPTIONS", "OBJECTIVES", "TOLERANCE", "DispatchOptions", "Strategy"]

#: Laxity and comparison tolerance of the dispatch rules on energies [kWh] and powers [kW].
TOLERANCE = 1e-9

#: ``v2g_optimal`` objectives: the asset's peak load, or its energy above the limit.
OBJECTIVES = ("peak", "overload")


class Strategy(StrEnum):
    """Named dispatch strategies (see :mod:`gridplan.ev.dispatch` for their rules)."""

    UNMANAGED = "unmanaged"
    TOU = "tou"
    SMART = "smart"
    V2G_PEAK_SHAVE = "v2g_peak_shave"
    V2G_EVENT = "v2g_event"
    V2G_OPTIMAL = "v2g_optimal"

    @classmethod
    def parse(cls, name: str | Strategy) -> Strategy:
        """Return the strategy called ``name``; unknown names list the valid ones."""
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(s.value for s in cls)
            raise ConfigError(f"unknown strategy '{name}' (expected one of: {valid})") from None

    @property
    def needs_context(self) -> bool:
        """Whether the strategy sees the grid (needs a ``DispatchContext``)."""
        return self in (Strategy.SMART, Strategy.V2G_PEAK_SHAVE, Strategy.V2G_OPTIMAL)

    @property
    def exports(self) -> bool:
        """Whether the strategy may discharge enrolled EVs to the grid."""
        return self in (Strategy.V2G_PEAK_SHAVE, Strategy.V2G_EVENT, Strategy.V2G_OPTIMAL)


@dataclass(frozen=True)
class DispatchOptions:
    """Settings of one dispatch run, each default written once here.

    :func:`gridplan.ev.dispatch.dispatch` takes these as keywords (its defaults are the
    ones below) and checks them by building this object; study configs take their
    defaults from :data:`DEFAULT_DISPATCH_OPTIONS`.

    Attributes
    ----------
    window_start_h, window_end_h
        ``v2g_event`` without an event calendar: event window, hours of the day [h];
        default 16-21, the ELRP event window 4-9 p.m.
        (:data:`gridplan.ev.events.ELRP_WINDOW_START_H`, CPUC Emergency Load Reduction
        Program).
    event_months
        ``v2g_event`` without an event calendar: months with events; default all (ELRP
        runs May-October: pass an ELRP calendar for its rules).
    warmup_h
        Simulated time before the period [h], discarded; default a day.
    transformer_export_limit_kw
        Limit on total V2G export behind one service transformer [kW] (``inf``: none);
        default ``None``: the fleet's ``transformer_export_limit_kw``.
    objective
        ``v2g_optimal``: minimize each asset's ``"peak"`` load (default) or its
        ``"overload"`` energy above the planning limit.
    max_lp_variables
        ``v2g_optimal``: largest linear program allowed [variables]; default 200,000
        (about 2-3 variables per EV and step).
    keep_ev_series
        Keep the (time, EV) series of power, state of charge and plug-in state (default);
        ``False`` keeps aggregates and per-EV totals only (bounded memory).
    dtype
        Float type of the kept series and aggregates; default float64.

    Raises
    ------
    ConfigError
        On an impossible window, bad months or an unknown objective.
    """

    window_start_h: float = ELRP_WINDOW_START_H
    window_end_h: float = ELRP_WINDOW_END_H
    event_months: tuple[int, ...] = ALL_MONTHS
    warmup_h: float = 24.0
    transformer_export_limit_kw: float | None = None
    objective: Literal["peak", "overload"] = "peak"
    max_lp_variables: int = 200_000
    keep_ev_series: bool = True
    dtype: DTypeLike = np.float64

    def __post_init__(self) -> None:
        check_window(self.window_start_h, self.window_end_h, field="window_start_h/window_end_h")
        months = tuple(self.event_months)
        check_months(months, field="event_months")
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"unknown objective '{self.objective}' (expected one of: {', '.join(OBJECTIVES)})",
                field="objective",
            )
        object.__setattr__(self, "event_months", months)


#: The defaults of :func:`gridplan.ev.dispatch.dispatch` (``DispatchOptions()``).
DEFAULT_DISPATCH_OPTIONS: Final = DispatchOptions()

"""What a feeder's profile year is, as data: a calendar year, a typical (TMY) year or a
nominal one, with its climate, data sources and diversity method (issue 18).

Reports must not print the dates of a typical year as if they were history. The answer
comes from the feeder spec (its profile source and builder), never from its description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

__all__ = [
    "DIVERSITY_METHOD",
    "LONG_BEACH_CLIMATE",
    "LONG_BEACH_SOURCES",
    "TYPICAL_YEAR_BUILDERS",
    "ProfileYear",
    "profile_year",
]

#: Climate of the DOE/OpenEI Long Beach profiles and their weather.
LONG_BEACH_CLIMATE = (
    "Long Beach, CA (TMY3 station 722970, ASHRAE climate zone 3B, warm marine-influenced "
    "coast): summer and early-autumn evening peaks (air conditioning)"
)
#: Data sources of the Long Beach profiles.
LONG_BEACH_SOURCES = (
    "load shapes: US DOE/OpenEI 'Commercial and Residential Hourly Load Profiles for all "
    "TMY3 Locations in the United States', Long Beach, CA (CC BY 4.0)",
    "weather and PV: NREL TMY3 Long Beach (public domain), rooftop PV modelled with pvlib "
    "(PVWatts-style chain; adoption share and size: gridplan.grid.pv.PV_ADOPTION)",
)
#: The diversity method of :func:`gridplan.grid.loadshapes.customer_profiles`.
DIVERSITY_METHOD = (
    "per-customer profiles (gridplan.grid.loadshapes.customer_profiles): a mix of the DOE "
    "BASE/HIGH/LOW homes, time shifts of up to +/-30 min and gamma noise held over 3 h "
    "blocks, calibrated to Kersting's diversity factors (Distribution System Modeling and "
    "Analysis, Table 2.2; groups of 1/5/10/50 within 10 %)"
)

#: Builders whose profiles are a typical year (the others: a calendar year).
TYPICAL_YEAR_BUILDERS = frozenset({"ca_residential"})


@dataclass(frozen=True)
class ProfileYear:
    """The kind of year a feeder's profiles represent.

    Attributes
    ----------
    kind
        ``"calendar"`` (dates are history, e.g. SimBench 2016), ``"typical"`` (a TMY
        year: each month from a different historic year, dates nominal) or ``"nominal"``
        (the source names no year; gridplan placed the profiles on one).
    year
        The year of the time axis [year].
    label
        How reports name it, e.g. ``"2016 calendar"`` or
        ``"a typical (TMY3) year, dates nominal (2017)"``.
    climate
        Climate of the load shapes and weather, when known.
    sources
        Data sources of the profiles, when known.
    diversity
        How customers' profiles are made to differ, when gridplan made them.
    """

    kind: Literal["calendar", "typical", "nominal"]
    year: int
    label: str
    climate: str | None = None
    sources: tuple[str, ...] = ()
    diversity: str | None = None


def profile_year(spec: Any, time_index: pd.DatetimeIndex) -> ProfileYear:
    """The profile year of a feeder from its spec (``Feeder.spec``) and time axis.

    Parameters
    ----------
    spec
        The feeder's :class:`gridplan.grid.feeders.FeederSpec`, or ``None`` (built in
        Python: taken as a calendar year).
    time_index
        The feeder's time axis.

    Returns
    -------
    ProfileYear
    """
    year = int(time_index[0].year)
    source = getattr(getattr(spec, "profiles", None), "source", None)
    builder = getattr(getattr(spec, "network", None), "builder", None)
    if source == "doe_tmy3" or (source == "builder" and builder in TYPICAL_YEAR_BUILDERS):
        return ProfileYear(
            kind="typical",
            year=year,
            label=f"a typical (TMY3) year, dates nominal ({year})",
            climate=LONG_BEACH_CLIMATE,
            sources=LONG_BEACH_SOURCES,
            diversity=DIVERSITY_METHOD,
        )
    if source == "opendss":
        return ProfileYear(
            kind="nominal",
            year=year,
            label=f"the model's yearly loadshapes on a nominal year ({year}; the model names none)",
            sources=("the OpenDSS model's yearly loadshapes",),
        )
    sources = ("SimBench 2016 profiles (Meinecke et al., Energies 13(12), 2020)",)
    return ProfileYear(
        kind="calendar",
        year=year,
        label=f"{year} calendar",
        sources=sources if source in ("simbench", "builder") else (),
    )

"""Rooftop PV and ambient temperature from TMY3 weather with pvlib (issue 18).

Weather: NREL TMY3 typical-year file of Long Beach Daugherty Field (station 722970), bundled
in ``gridplan/data/weather/`` (public domain; Wilcox & Marion 2008, NREL/TP-581-43156; see its
README), read with :func:`pvlib.iotools.read_tmy3`. It is the weather behind the DOE Long
Beach load shapes of :mod:`gridplan.grid.loadshapes`, and the results share their
typical-year index (:func:`gridplan.grid.loadshapes.typical_year_index`, interval start).

PV chain (PVWatts-style, after Dobos, *PVWatts Version 5 Manual*, NREL/TP-6A20-62641, 2014):
sun position at each hour's mid-point; plane-of-array irradiance (Hay-Davies sky diffuse,
ground albedo 0.2); beam reflection loss (pvlib ``iam.physical``); cell temperature (SAPM,
close-mount glass/glass, King et al. 2004, SAND2004-3535); ``pvwatts_dc`` with the standard
module's -0.47 %/degC; PVWatts default system losses 14.08 %; ``inverter.pvwatts`` with
nominal efficiency 0.96 and a DC/AC ratio of 1.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pvlib

from gridplan.core.errors import ConfigError
from gridplan.grid.loadshapes import HOURS_PER_YEAR, to_step, typical_year_index

__all__ = [
    "LONG_BEACH_TMY3",
    "PV_ADOPTION",
    "WEATHER_DIR",
    "PVAdoption",
    "PVSystem",
    "Weather",
    "ambient_temperature_c",
    "pv_ac_kw",
    "pv_profiles_kw",
    "read_weather",
]

#: Folder of the bundled TMY3 weather files.
WEATHER_DIR = Path(__file__).resolve().parents[1] / "data" / "weather"
#: TMY3 file of Long Beach Daugherty Field (station 722970).
LONG_BEACH_TMY3 = WEATHER_DIR / "722970TYA.CSV"

_WEATHER_COLUMNS = ("ghi", "dni", "dhi", "temp_air", "wind_speed")


@dataclass(frozen=True)
class Weather:
    """Hourly typical-year weather of one station.

    Attributes
    ----------
    hourly
        Columns ``ghi``, ``dni``, ``dhi`` [W/m2], ``temp_air`` [degC], ``wind_speed`` [m/s];
        hourly means on :func:`typical_year_index` (interval start, local standard time).
    latitude, longitude
        Station position [deg] (north, east positive).
    altitude_m
        Station elevation [m].
    utc_offset_h
        Local standard time offset from UTC [h] (-8 for California).
    station
        Station name and number as in the file.
    source
        The file read.
    """

    hourly: pd.DataFrame
    latitude: float
    longitude: float
    altitude_m: float
    utc_offset_h: float
    station: str
    source: str


def read_weather(path: str | Path = LONG_BEACH_TMY3) -> Weather:
    """Read a TMY3 file onto the typical-year index.

    TMY3 rows are hour-ending (01:00 ... 24:00) and each month carries the historic year it
    was drawn from; row ``i`` becomes hour ``i`` of :func:`typical_year_index` (labelled by
    interval start), so the dates are nominal.

    Parameters
    ----------
    path
        A TMY3 ``.CSV`` file (NSRDB 1991-2005 layout).

    Returns
    -------
    Weather

    Raises
    ------
    ConfigError
        Unreadable file, not 8,760 rows, a missing column, or a non-finite value.
    """
    path = Path(path)
    try:
        data, meta = pvlib.iotools.read_tmy3(str(path), map_variables=True)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise ConfigError(
            f"not a readable TMY3 file ({type(exc).__name__}: {exc})", file=path
        ) from None
    if len(data) != HOURS_PER_YEAR:
        raise ConfigError(
            f"{len(data)} rows; expected {HOURS_PER_YEAR} hourly rows of a typical year",
            file=path,
            field="Date (MM/DD/YYYY)",
        )
    for name in _WEATHER_COLUMNS:
        if name not in data.columns:
            raise ConfigError("column missing", file=path, field=name)
        values = data[name].to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ConfigError(f"row {row + 3}: not a finite number", file=path, field=name)
    hourly = pd.DataFrame(
        {name: data[name].to_numpy(dtype=float) for name in _WEATHER_COLUMNS},
        index=typical_year_index(60),
    )
    return Weather(
        hourly=hourly,
        latitude=float(meta["latitude"]),
        longitude=float(meta["longitude"]),
        altitude_m=float(meta["altitude"]),
        utc_offset_h=float(meta["TZ"]),
        station=f"{meta['Name']} ({meta['USAF']})",
        source=str(path),
    )


def ambient_temperature_c(weather: Weather | None = None, step_minutes: int = 15) -> pd.Series:
    """Dry-bulb air temperature on the typical-year index [degC].

    Parameters
    ----------
    weather
        Weather; default :func:`read_weather` of Long Beach.
    step_minutes
        Step [min]: 15, 30 or 60 (finer steps interpolate linearly between hour mid-points).

    Returns
    -------
    pandas.Series
        ``temp_air_c`` on :func:`typical_year_index` (``step_minutes``).
    """
    weather = weather or read_weather()
    values = to_step(weather.hourly["temp_air"].to_numpy(), step_minutes)
    return pd.Series(values, index=typical_year_index(step_minutes), name="temp_air_c")


@dataclass(frozen=True)
class PVSystem:
    """A fixed rooftop PV system (PVWatts defaults unless stated).

    Attributes
    ----------
    dc_kw
        Array size at standard test conditions [kW-DC].
    tilt_deg, azimuth_deg
        Array tilt from horizontal and azimuth (180 = south) [deg]; PVWatts defaults 20, 180.
    dc_ac_ratio
        Array DC size over inverter AC rating [-]; PVWatts default 1.2.
    gamma_pdc_per_c
        Power temperature coefficient [1/degC]; PVWatts v5 standard module -0.0047.
    system_losses
        Soiling, shading, wiring, mismatch, etc. as a fraction [-]; PVWatts default 0.1408.
    inverter_efficiency
        Nominal inverter efficiency [-]; PVWatts default 0.96.
    albedo
        Ground reflectance [-]; 0.2, the usual default for a mixed urban ground.
    """

    dc_kw: float = 1.0
    tilt_deg: float = 20.0
    azimuth_deg: float = 180.0
    dc_ac_ratio: float = 1.2
    gamma_pdc_per_c: float = -0.0047
    system_losses: float = 0.1408
    inverter_efficiency: float = 0.96
    albedo: float = 0.2


def _check_system(system: PVSystem) -> None:
    ranges = {
        "dc_kw": (system.dc_kw, 0.0, 1e5),
        "tilt_deg": (system.tilt_deg, 0.0, 90.0),
        "azimuth_deg": (system.azimuth_deg, 0.0, 360.0),
        "dc_ac_ratio": (system.dc_ac_ratio, 0.5, 3.0),
        "gamma_pdc_per_c": (system.gamma_pdc_per_c, -0.02, 0.0),
        "system_losses": (system.system_losses, 0.0, 0.9),
        "inverter_efficiency": (system.inverter_efficiency, 0.5, 1.0),
        "albedo": (system.albedo, 0.0, 1.0),
    }
    for name, (value, low, high) in ranges.items():
        if isinstance(value, bool) or not (np.isfinite(value) and low <= value <= high):
            raise ConfigError(f"got {value!r}; expected a number in [{low}, {high}]", field=name)


def pv_ac_kw(
    system: PVSystem | None = None, weather: Weather | None = None, step_minutes: int = 15
) -> npt.NDArray[np.float64]:
    """AC output of a rooftop PV system over the typical year [kW].

    Parameters
    ----------
    system
        The PV system; default :class:`PVSystem` (1 kW-DC, PVWatts defaults).
    weather
        Weather; default :func:`read_weather` of Long Beach.
    step_minutes
        Step [min]: 15, 30 or 60. Hourly output is interpolated between hour mid-points
        (night stays zero: a value is zero wherever both neighbouring hours are zero).

    Returns
    -------
    numpy.ndarray
        AC power >= 0 [kW] on :func:`typical_year_index` (``step_minutes``).
    """
    system = system or PVSystem()
    _check_system(system)
    weather = weather or read_weather()
    hourly = _hourly_ac_kw(system, weather)
    out = to_step(hourly, step_minutes)
    return np.where(out > 0.0, out, 0.0)


def _hourly_ac_kw(system: PVSystem, weather: Weather) -> npt.NDArray[np.float64]:
    frame = weather.hourly
    mid = (frame.index + pd.Timedelta(minutes=30)).tz_localize(
        f"Etc/GMT{int(-weather.utc_offset_h):+d}"
    )
    solpos = pvlib.solarposition.get_solarposition(
        mid, weather.latitude, weather.longitude, altitude=weather.altitude_m
    )
    dni_extra = pvlib.irradiance.get_extra_radiation(mid)
    ghi, dni, dhi = (frame[c].to_numpy() for c in ("ghi", "dni", "dhi"))
    poa = pvlib.irradiance.get_total_irradiance(
        system.tilt_deg,
        system.azimuth_deg,
        solpos["apparent_zenith"].to_numpy(),
        solpos["azimuth"].to_numpy(),
        dni,
        ghi,
        dhi,
        dni_extra=dni_extra.to_numpy(),
        albedo=system.albedo,
        model="haydavies",
    )
    aoi = pvlib.irradiance.aoi(
        system.tilt_deg,
        system.azimuth_deg,
        solpos["apparent_zenith"].to_numpy(),
        solpos["azimuth"].to_numpy(),
    )
    iam = pvlib.iam.physical(aoi)
    effective = np.nan_to_num(poa["poa_direct"] * iam + poa["poa_diffuse"], nan=0.0)
    effective = np.clip(np.asarray(effective, dtype=float), 0.0, None)
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["close_mount_glass_glass"]
    temp_cell = pvlib.temperature.sapm_cell(
        effective,
        frame["temp_air"].to_numpy(),
        frame["wind_speed"].to_numpy(),
        params["a"],
        params["b"],
        params["deltaT"],
    )
    pdc0_w = system.dc_kw * 1000.0
    pdc_w = pvlib.pvsystem.pvwatts_dc(effective, temp_cell, pdc0_w, system.gamma_pdc_per_c)
    pdc_w = np.asarray(pdc_w, dtype=float) * (1.0 - system.system_losses)
    pac0_w = pdc0_w / system.dc_ac_ratio
    pac_w = pvlib.inverter.pvwatts(
        pdc_w, pac0_w / system.inverter_efficiency, system.inverter_efficiency
    )
    return np.clip(np.asarray(pac_w, dtype=float), 0.0, None) / 1000.0


@dataclass(frozen=True)
class PVAdoption:
    """Rooftop PV adoption of one customer class.

    Attributes
    ----------
    share
        Share of the class's customers with PV [-].
    dc_kw
        Typical system size [kW-DC].
    source
        Where the two figures come from.
    """

    share: float
    dc_kw: float
    source: str


#: PV adoption per customer class. Residential: about 2 million residential rooftop systems
#: interconnected under net metering in California (California Distributed Generation
#: Statistics, californiadgstats.ca.gov) against about 13 million residential accounts
#: (EIA-861) gives roughly 15 %; new California residential systems averaged 7.1 kW-DC in
#: 2022 (LBNL, *Tracking the Sun*, 2023 edition, as reported by Utility Dive). Commercial:
#: the median non-residential system was 47 kW-DC in 2018 (LBNL, *Tracking the Sun*, 2019
#: edition); the 5 % share is an assumption, not a sourced figure.
PV_ADOPTION = {
    "residential": PVAdoption(
        share=0.15,
        dc_kw=7.1,
        source="CA DG Stats (about 2 million residential NEM systems) / EIA-861 residential "
        "accounts; LBNL Tracking the Sun 2023 (CA 2022 average 7.1 kW-DC)",
    ),
    "commercial": PVAdoption(
        share=0.05,
        dc_kw=47.0,
        source="LBNL Tracking the Sun 2019 (non-residential median 47 kW-DC, 2018); share "
        "is an assumption",
    ),
}


def pv_profiles_kw(
    dc_kw: npt.ArrayLike, weather: Weather | None = None, step_minutes: int = 15
) -> npt.NDArray[np.float64]:
    """AC profiles of several PVWatts-default rooftop systems of the given sizes [kW].

    The systems share the weather and orientation, so each is the 1 kW-DC profile scaled by
    its size.

    Parameters
    ----------
    dc_kw
        Array sizes [kW-DC], each >= 0.
    weather, step_minutes
        As :func:`pv_ac_kw`.

    Returns
    -------
    numpy.ndarray
        Shape (time, system) [kW].
    """
    sizes = np.atleast_1d(np.asarray(dc_kw, dtype=float))
    if sizes.ndim != 1 or not np.all(np.isfinite(sizes) & (sizes >= 0)):
        raise ConfigError("expected array sizes >= 0 [kW-DC]", field="dc_kw")
    unit = pv_ac_kw(PVSystem(dc_kw=1.0), weather, step_minutes)
    return unit[:, None] * sizes[None, :]

"""California profiles for any network: DOE/OpenEI TMY3 load shapes per customer class and
pvlib rooftop PV (issue 18).

A feeder spec with ``[profiles] source = "doe_tmy3"`` keeps its network (OpenDSS,
pandapower, JSON, SimBench) and replaces its loads' profiles by the DOE/OpenEI Long Beach
load shapes of :mod:`gridplan.grid.loadshapes`, on the typical (TMY3) year, and adds rooftop
PV modelled with pvlib on the Long Beach TMY3 weather (:mod:`gridplan.grid.pv`). The rules,
each stated where it is applied:

1. **Annual energy per load** (``annual_energy``): ``"profile"`` keeps the energy of the
   network's own profile of each load (an OpenDSS load: its kW x the energy of its own
   yearly loadshape, scaled to 8,760 h); ``"peak"`` reads each load's nominal kW as its
   peak demand and gives it ``kW x 8,760 h x`` the load factor of its class's shape.
2. **Customer class per load**: the network's class (``net.load.profile`` when it holds
   ``residential``/``commercial``/``primary``, as the OpenDSS importer writes it), else
   ``residential``; optionally (``commercial_above_kwh``) a ``residential`` load above that
   annual energy is taken as ``commercial``.
3. **Profile per class** (``classes``): ``"residential"`` -> the sum of
   ``max(1, round(annual kWh / customer_annual_kwh))`` per-customer profiles, each with an
   equal share of the load's energy, from the diversity method calibrated to Kersting's
   diversity factors (:func:`gridplan.grid.loadshapes.customer_profiles`): a load that
   stands for several homes behind one service transformer is diversified as they are; a DOE
   commercial reference building key (:data:`gridplan.grid.loadshapes.COMMERCIAL_BUILDINGS`)
   -> that building's shape; ``"auto"`` -> the reference building whose annual energy is
   nearest the load's (log scale); ``"feeder_mix"`` -> the shape of the sum of the
   network's non-``feeder_mix`` loads (for equivalents of a substation's other feeders).
   Each load's profile is scaled to its annual energy exactly.
4. **Reactive power**: each load keeps its nominal power factor (``q/p`` of the network's
   load when ``p > 0``), else ``power_factor``.
5. **Rooftop PV** (``[profiles.pv]``): each load of a PV class gets a system with the
   probability :data:`gridplan.grid.pv.PV_ADOPTION` ``[class].share`` (one draw per load),
   of ``dc_kw`` per customer (``net.load.customers`` when the network gives it, else 1), as a
   ``sgen`` at the load's bus rated at the inverter's AC power. Existing ``sgen`` of the
   network follow the same pvlib profile scaled to their rating (taken as AC).

All random draws come from one :class:`numpy.random.Generator` seeded with ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandapower as pp
import pandas as pd
from pydantic import Field, field_validator

from gridplan.core.config import StrictModel
from gridplan.core.errors import ConfigError
from gridplan.grid import loadshapes

__all__ = [
    "CUSTOMER_ANNUAL_KWH",
    "LOAD_CLASSES",
    "PROFILE_KINDS",
    "DoeProfiles",
    "DoeTmy3Spec",
    "LoadClass",
    "PVClass",
    "PVSpec",
    "build_profiles",
    "feeder_profiles",
]

#: Load classes a network can give (the OpenDSS importer's classes).
LOAD_CLASSES = ("residential", "commercial", "primary")
#: Profile kinds besides the commercial reference buildings.
PROFILE_KINDS = ("residential", "auto", "feeder_mix")

#: Annual consumption of one residential customer used to split a residential load into
#: customers [kWh/yr]: the average US residential customer, EIA 2022 (Electric Sales,
#: Revenue and Price, table T5.a), as the EPRI feeder specs' household rule.
CUSTOMER_ANNUAL_KWH = 10_791.0


PVClass = Literal["residential", "commercial"]
LoadClass = Literal["residential", "commercial", "primary"]
_PV_CLASSES: tuple[PVClass, ...] = ("residential", "commercial")
_DEFAULT_CLASSES: dict[LoadClass, str] = {
    "residential": "residential",
    "commercial": "auto",
    "primary": "feeder_mix",
}


class PVSpec(StrictModel):
    """Rooftop PV added to a ``doe_tmy3`` feeder (``[profiles.pv]``).

    Attributes
    ----------
    classes
        Load classes that get PV, each with the share and size of
        :data:`gridplan.grid.pv.PV_ADOPTION` (``residential``, ``commercial``); empty: no PV.
    """

    classes: list[PVClass] = Field(default_factory=lambda: list(_PV_CLASSES))


class DoeTmy3Spec(StrictModel):
    """Options of the ``doe_tmy3`` profile source (``[profiles.doe_tmy3]``).

    Attributes
    ----------
    location
        Load shapes and weather: ``"long_beach"`` (DOE/OpenEI TMY3 Long Beach, CA, ASHRAE
        climate zone 3B; the only bundled location).
    step_minutes
        Profile step [min]: 60 (the data as published) or 15 (interpolated).
    seed
        Seed of every draw (customer diversity, PV customers), an integer >= 0.
    annual_energy
        ``"profile"`` (each load's own profile energy; needs a network with profiles, e.g.
        OpenDSS) or ``"peak"`` (nominal kW x 8,760 h x the class shape's load factor).
    customer_annual_kwh
        Annual energy of one residential customer [kWh/yr] (rule 3); keep it equal to the
        spec's ``[households] household_annual_kwh``.
    commercial_above_kwh
        A residential load above this annual energy is commercial [kWh/yr]; ``None``
        (default): the network's classes are kept.
    classes
        Load class -> profile: ``"residential"``, ``"auto"``, ``"feeder_mix"`` or a DOE
        commercial building key.
    pv
        Rooftop PV (:class:`PVSpec`).
    """

    location: Literal["long_beach"] = "long_beach"
    step_minutes: Literal[15, 60] = 60
    seed: Annotated[int, Field(ge=0)] = 18
    annual_energy: Literal["profile", "peak"] = "profile"
    customer_annual_kwh: float = Field(default=CUSTOMER_ANNUAL_KWH, gt=0, allow_inf_nan=False)
    commercial_above_kwh: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    classes: dict[LoadClass, str] = Field(default_factory=lambda: dict(_DEFAULT_CLASSES))
    pv: PVSpec = Field(default_factory=PVSpec)

    @field_validator("classes")
    @classmethod
    def _known_profiles(cls, value: dict[str, str]) -> dict[str, str]:
        valid = (*PROFILE_KINDS, *loadshapes.COMMERCIAL_BUILDINGS)
        for load_class, profile in value.items():
            if profile not in valid:
                raise ValueError(
                    f"class '{load_class}': unknown profile '{profile}' (expected one of: "
                    f"{', '.join(valid)})"
                )
        return value


@dataclass(frozen=True)
class DoeProfiles:
    """Profiles of a ``doe_tmy3`` feeder (what :func:`build_profiles` returns).

    Attributes
    ----------
    time_index
        The typical year (:func:`gridplan.grid.loadshapes.typical_year_index`).
    load_p_kw, load_q_kvar
        Load profiles [kW], [kvar], shape (time, load), ``net.load`` order.
    sgen_p_kw
        PV profiles [kW], shape (time, sgen), ``net.sgen`` order (the added PV last).
    load_class
        Class of each load after rule 2 (``residential``/``commercial``/``primary``).
    profile
        Profile of each load (``residential``, a building key, or ``feeder_mix``).
    annual_kwh
        Annual energy of each load [kWh/yr].
    pv_dc_kw
        DC size of each added PV system [kW-DC].
    """

    time_index: pd.DatetimeIndex
    load_p_kw: npt.NDArray[np.float64]
    load_q_kvar: npt.NDArray[np.float64]
    sgen_p_kw: npt.NDArray[np.float64]
    load_class: npt.NDArray[np.str_]
    profile: npt.NDArray[np.str_]
    annual_kwh: npt.NDArray[np.float64]
    pv_dc_kw: npt.NDArray[np.float64]


def _annual_kwh(
    net: pp.pandapowerNet,
    spec: DoeTmy3Spec,
    reference: tuple[pd.DatetimeIndex, np.ndarray] | None,
    load_class: np.ndarray,
) -> npt.NDArray[np.float64]:
    """Annual energy per load [kWh/yr] by rule 1 of the module docstring."""
    if spec.annual_energy == "profile":
        if reference is None:
            raise ConfigError(
                "annual_energy 'profile' needs a network with its own load profiles "
                "(e.g. network source 'opendss'); use 'peak' for this network",
                field="profiles.doe_tmy3.annual_energy",
            )
        index, p_kw = reference
        step_h = (index[1] - index[0]) / pd.Timedelta(hours=1)
        hours = len(index) * step_h
        return (
            np.asarray(p_kw, dtype=float).sum(axis=0) * step_h * loadshapes.HOURS_PER_YEAR / hours
        )
    peak_kw = net.load.p_mw.to_numpy(dtype=float) * 1000.0
    factors = {
        "residential": _load_factor(loadshapes.residential_shapes()["BASE"].to_numpy()),
        "commercial": _load_factor(loadshapes.commercial_shapes().to_numpy().sum(axis=1)),
    }
    factor = np.array([factors.get(c, factors["commercial"]) for c in load_class])
    return peak_kw * loadshapes.HOURS_PER_YEAR * factor


def _load_factor(shape: np.ndarray) -> float:
    """Mean over peak of an hourly shape [-]."""
    return float(shape.mean() / shape.max())


def _classes(net: pp.pandapowerNet) -> npt.NDArray[np.str_]:
    """Rule 2, first part: the network's class of each load, else residential."""
    given = net.load["profile"].astype(str) if "profile" in net.load else None
    if given is None:
        return np.full(len(net.load), "residential")
    return np.where(given.isin(LOAD_CLASSES), given, "residential").astype(str)


def _nearest_building(annual_kwh: float, building_kwh: pd.Series) -> str:
    """The reference building whose annual energy is nearest (log scale)."""
    distance = np.abs(np.log(building_kwh.to_numpy()) - np.log(max(annual_kwh, 1e-9)))
    return str(building_kwh.index[int(np.argmin(distance))])


def _assign_profiles(
    load_class: np.ndarray, annual_kwh: np.ndarray, spec: DoeTmy3Spec
) -> npt.NDArray[np.str_]:
    """Rule 3: the profile of each load (``auto`` resolved to a building)."""
    building_kwh = loadshapes.commercial_shapes().sum()
    out = []
    for cls, kwh in zip(load_class, annual_kwh, strict=True):
        profile = spec.classes.get(cls, "residential" if cls == "residential" else "auto")
        out.append(_nearest_building(kwh, building_kwh) if profile == "auto" else profile)
    return np.asarray(out, dtype=str)


def build_profiles(
    net: pp.pandapowerNet,
    spec: DoeTmy3Spec,
    *,
    power_factor: float = 0.95,
    reference: tuple[pd.DatetimeIndex, np.ndarray] | None = None,
) -> DoeProfiles:
    """California profiles for ``net``'s loads and rooftop PV added to ``net`` as sgens.

    Parameters
    ----------
    net
        The network; PV ``sgen`` rows are added to it (rule 5), and ``net.load.profile``
        is set to each load's class (rule 2), which household rules read.
    spec
        The source's options.
    power_factor
        Power factor of loads without a nominal one [-].
    reference
        The network's own profiles ``(time_index, load_p_kw)``, for ``annual_energy =
        "profile"``.

    Returns
    -------
    DoeProfiles

    Raises
    ------
    ConfigError
        ``annual_energy = "profile"`` without ``reference``, or a load of zero energy for
        a class that needs one.
    """
    rng = np.random.default_rng(spec.seed)
    step = spec.step_minutes
    load_class = _classes(net)
    annual = _annual_kwh(net, spec, reference, load_class)
    annual = np.where(np.isfinite(annual) & (annual > 0), annual, 0.0)
    if spec.commercial_above_kwh is not None:
        big = (load_class == "residential") & (annual > spec.commercial_above_kwh)
        load_class = np.where(big, "commercial", load_class).astype(str)
    profile = _assign_profiles(load_class, annual, spec)
    index = loadshapes.typical_year_index(step)
    p_kw = np.zeros((len(index), len(net.load)))
    customers = _customers(net, profile, annual, spec)
    _residential(p_kw, np.flatnonzero((profile == "residential") & (annual > 0)), customers,
                 annual, rng, step)  # fmt: skip
    shapes = loadshapes.commercial_shapes(step)
    step_h = step / 60.0
    for building in shapes.columns:
        cols = np.flatnonzero(profile == building)
        unit = shapes[building].to_numpy() / (shapes[building].sum() * step_h)
        p_kw[:, cols] = unit[:, None] * annual[cols][None, :]
    mix = profile == "feeder_mix"
    if mix.any():
        total = p_kw[:, ~mix].sum(axis=1)
        if total.sum() <= 0:
            raise ConfigError(
                "profile 'feeder_mix' needs other loads to take the shape of",
                field="profiles.doe_tmy3.classes",
            )
        p_kw[:, mix] = (total / (total.sum() * step_h))[:, None] * annual[mix][None, :]
    q_kvar = p_kw * _tan_phi(net, power_factor)[None, :]
    net.load["profile"] = load_class
    sgen_p, dc_kw = _add_pv(net, spec, load_class, customers, rng, step)
    return DoeProfiles(
        time_index=index,
        load_p_kw=p_kw,
        load_q_kvar=q_kvar,
        sgen_p_kw=sgen_p,
        load_class=load_class,
        profile=profile,
        annual_kwh=annual,
        pv_dc_kw=dc_kw,
    )


def _customers(
    net: pp.pandapowerNet, profile: np.ndarray, annual: np.ndarray, spec: DoeTmy3Spec
) -> npt.NDArray[np.int64]:
    """Customers per load: rule 3 for residential profiles, else the network's count or 1."""
    given = (
        net.load["customers"].to_numpy(dtype=float)
        if "customers" in net.load
        else np.ones(len(net.load))
    )
    given = np.where(np.isfinite(given) & (given >= 1), given, 1.0)
    split = np.maximum(1, np.round(annual / spec.customer_annual_kwh))
    return np.where(profile == "residential", split, given).astype(np.int64)


#: Most customers drawn at once (bounds the memory of one draw: customers x steps).
_CHUNK_CUSTOMERS = 256


def _residential(
    p_kw: np.ndarray,
    loads: np.ndarray,
    customers: np.ndarray,
    annual: np.ndarray,
    rng: np.random.Generator,
    step: int,
) -> None:
    """Fill ``p_kw[:, loads]`` with the sum of each load's diverse customer profiles."""
    start = 0
    while start < loads.size:
        stop = start + 1
        while stop < loads.size and customers[loads[start : stop + 1]].sum() <= _CHUNK_CUSTOMERS:
            stop += 1
        chunk = loads[start:stop]
        n = customers[chunk]
        energy = np.repeat(annual[chunk] / n, n)
        homes = loadshapes.customer_profiles(energy, rng, step_minutes=step)
        p_kw[:, chunk] = np.add.reduceat(homes, np.concatenate([[0], np.cumsum(n)[:-1]]), axis=1)
        start = stop


def _tan_phi(net: pp.pandapowerNet, power_factor: float) -> npt.NDArray[np.float64]:
    """Rule 4: each load's nominal q/p, else ``tan(arccos(power_factor))``."""
    p = net.load.p_mw.to_numpy(dtype=float)
    q = net.load.q_mvar.to_numpy(dtype=float)
    default = float(np.tan(np.arccos(power_factor)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p > 0, q / p, default)
    return np.where(np.isfinite(ratio), ratio, default)


def _add_pv(
    net: pp.pandapowerNet,
    spec: DoeTmy3Spec,
    load_class: np.ndarray,
    customers: np.ndarray,
    rng: np.random.Generator,
    step_minutes: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rule 5: add PV sgens; profiles of every sgen (existing first) [kW] and added DC sizes.

    Each customer of a PV class has PV with the class's share (a binomial draw per load
    over its customers); a load's systems are one ``sgen`` of their summed size.
    """
    from gridplan.grid import pv

    unit = pv.pv_ac_kw(pv.PVSystem(dc_kw=1.0), step_minutes=step_minutes)
    dc_ac = pv.PVSystem().dc_ac_ratio
    existing = net.sgen.p_mw.to_numpy(dtype=float) * 1000.0 * dc_ac
    shares = np.array(
        [pv.PV_ADOPTION[c].share if c in spec.pv.classes else 0.0 for c in load_class]
    )
    systems = rng.binomial(customers, shares)
    sizes = []
    for cls in spec.pv.classes:
        adoption = pv.PV_ADOPTION[cls]
        for i in np.flatnonzero((load_class == cls) & (systems > 0)).tolist():
            dc_kw = adoption.dc_kw * float(systems[i])
            name = str(net.load.name.iloc[i])
            pp.create_sgen(
                net,
                int(net.load.bus.iloc[i]),
                p_mw=dc_kw / dc_ac / 1000.0,
                name=f"PV {name}",
                type="PV",
            )
            sizes.append(dc_kw)
    dc_kw_all = np.concatenate([existing, np.asarray(sizes, dtype=float)])
    return unit[:, None] * dc_kw_all[None, :], np.asarray(sizes, dtype=float)


def feeder_profiles(
    profiles: Any, net: pp.pandapowerNet, dss_conv: Any, built: Any, path: Path | None
) -> DoeProfiles:
    """The ``doe_tmy3`` profiles of a feeder being built (the hook of ``build_feeder``).

    Parameters
    ----------
    profiles
        The spec's ``ProfileSpec`` (``doe_tmy3`` options and ``power_factor``).
    net
        The network (PV is added to it).
    dss_conv, built
        The OpenDSS conversion or the builder's output, if any: their load profiles are the
        reference of ``annual_energy = "profile"``.
    path
        The spec file, named in errors.
    """
    spec: DoeTmy3Spec = profiles.doe_tmy3
    reference = None
    for source in (dss_conv, built):
        index = getattr(source, "time_index", None)
        load_p = getattr(source, "load_p_kw", None)
        if index is not None and load_p is not None:
            reference = (index, load_p)
            break
    try:
        return build_profiles(
            net, spec, power_factor=float(profiles.power_factor), reference=reference
        )
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=path, field=exc.field) from None

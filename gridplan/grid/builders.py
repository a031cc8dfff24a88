"""Feeder builders: networks gridplan constructs itself, with profiles of documented origin.

``us_residential`` builds a US-style overhead residential feeder: a 12.47 kV primary
(trunk and laterals) feeding single-phase-equivalent pole-mount service transformers of
25-75 kVA, each serving a handful of homes. In California the service transformer is usually
the first asset that EV charging overloads; this feeder lets that show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandapower as pp
import pandas as pd

from gridplan.core.errors import ConfigError
from gridplan.grid import loadshapes, pv
from gridplan.grid.network_sources import (
    Option,
    OptionError,
    check_options,
    count,
    flag,
    number,
)

__all__ = [
    "BUILDERS",
    "BUILDER_OPTIONS",
    "CA_HOME_ANNUAL_KWH",
    "CONDUCTORS",
    "HOMES_PER_KVA",
    "SERVICE_XFMR",
    "SERVICE_XFMR_SIZES_KVA",
    "SIMBENCH_HOUSEHOLD_PROFILES",
    "BuiltFeeder",
    "build_ca_residential",
    "build_us_residential",
    "simbench_data_dir",
    "simbench_time_index",
]

#: Annual consumption of a California home [kWh/yr]. EIA, "Electric Sales, Revenue, and
#: Price" 2022, Table 5a: California residential average monthly consumption about
#: 520 kWh (about 6,250 kWh/yr), among the lowest of US states.
CA_HOME_ANNUAL_KWH = 6250.0

#: Typical overhead conductor data (positive sequence), after Kersting, *Distribution
#: System Modeling and Analysis*, appendix conductor tables (336.4 kcmil and 1/0 ACSR, 50 C).
CONDUCTORS = {
    "336_acsr": {
        "r_ohm_per_km": 0.190,
        "x_ohm_per_km": 0.39,
        "c_nf_per_km": 10.0,
        "max_i_ka": 0.53,
    },
    "1/0_acsr": {"r_ohm_per_km": 0.557, "x_ohm_per_km": 0.43, "c_nf_per_km": 9.0, "max_i_ka": 0.23},
}

#: Pole-mount distribution transformer impedance [%] and no-load loss [kW per kVA]; typical
#: nameplate values for 25-100 kVA single-phase units (about 2 % impedance, 0.3 % no-load
#: loss), stated here as engineering assumptions.
SERVICE_XFMR = {"vk_percent": 2.0, "vkr_percent": 1.1, "pfe_kw_per_kva": 0.003, "i0_percent": 0.3}

#: Homes served per kVA of service-transformer nameplate (uniform range) [1/kVA]: about
#: 5-8 homes on a 25 kVA unit, a common US residential design range (assumption).
HOMES_PER_KVA = (0.2, 0.32)

SIMBENCH_HOUSEHOLD_PROFILES = ("H0-A", "H0-B", "H0-C", "H0-G", "H0-H", "H0-L")


@dataclass(frozen=True)
class BuiltFeeder:
    """A network and its profiles as returned by a builder.

    Attributes
    ----------
    net
        The pandapower network (MW/MVA inside, as pandapower expects).
    time_index
        Time stamps of the profile rows (fixed 15-minute step).
    load_p_kw, load_q_kvar
        Load profiles [kW], [kvar], shape (time, load) in ``net.load.index`` order.
    sgen_p_kw
        Generation profiles [kW], shape (time, sgen) in ``net.sgen.index`` order.
    households
        Households per load, in ``net.load.index`` order.
    """

    net: pp.pandapowerNet
    time_index: pd.DatetimeIndex
    load_p_kw: np.ndarray
    load_q_kvar: np.ndarray
    sgen_p_kw: np.ndarray
    households: np.ndarray


def simbench_data_dir() -> Path:
    """Folder of SimBench's complete data set shipped inside the ``simbench`` pip package."""
    import simbench

    return Path(simbench.__file__).parent / "networks" / "1-complete_data-mixed-all-0-sw"


def simbench_time_index(labels: pd.Series) -> pd.DatetimeIndex:
    """A fixed-step DatetimeIndex for SimBench profile rows.

    SimBench labels (``"01.01.2016 00:15"``) are local clock time with daylight saving
    (a skipped hour in March, a repeated one in October) while the rows are evenly spaced
    in time (35,136 quarter hours in 2016). gridplan needs a fixed step, so the index starts
    at the first label and advances by the step of the first two labels: standard time all
    year (summer rows are labelled one hour earlier than SimBench's local labels).
    """
    parsed = pd.to_datetime(labels.iloc[:2], format="%d.%m.%Y %H:%M")
    step = parsed.iloc[1] - parsed.iloc[0]
    return pd.DatetimeIndex(
        pd.date_range(parsed.iloc[0], periods=len(labels), freq=step), name="time"
    )


def _read_simbench_profiles(file: str, columns: list[str]) -> pd.DataFrame:
    path = simbench_data_dir() / file
    frame = pd.read_csv(path, sep=";", usecols=["time", *columns])
    frame.index = simbench_time_index(frame.pop("time"))
    return frame


def build_us_residential(
    *,
    n_laterals: int = 4,
    transformers_per_lateral: int = 6,
    trunk_segment_km: float = 0.8,
    lateral_span_km: float = 0.15,
    home_annual_kwh: float = CA_HOME_ANNUAL_KWH,
    power_factor: float = 0.95,
    pv_share: float = 0.15,
    pv_kw: float = 5.0,
    source_vm_pu: float = 1.03,
    seed: int = 2016,
) -> BuiltFeeder:
    """Build a US-style 12.47 kV residential feeder with one year of 15-minute profiles.

    Topology: an external grid (the substation bus, held at ``source_vm_pu`` by the
    substation's load-tap changer) feeds a trunk of 336.4 kcmil ACSR with ``n_laterals``
    nodes; each node feeds a 1/0 ACSR lateral with ``transformers_per_lateral`` poles, each
    carrying a 12.47 kV / 240 V service transformer (modelled as a balanced,
    single-phase-equivalent unit of 25, 50 or 75 kVA). Every home is one load on its
    transformer's secondary bus.

    Transformer size and the number of homes it serves follow common US practice
    (:data:`HOMES_PER_KVA`); sizes are drawn with ``seed`` so the feeder is fixed. Home
    profiles are SimBench household profiles (``H0-*``, 15-minute, year 2016; Meinecke et
    al., "SimBench", Energies 13(12), 2020): each home a random convex mix of them
    (Dirichlet weights), shifted by up to +/- 60 min, rescaled to ``home_annual_kwh``. A share
    ``pv_share`` of homes has rooftop PV of ``pv_kw`` following SimBench profile ``PV3``.
    SimBench profiles are German: winter-peaking, without air conditioning. The feeder shows
    the EV-driven evening peak of a service transformer; it is not a calibrated model of
    a particular California circuit.

    Parameters
    ----------
    n_laterals, transformers_per_lateral
        Feeder size: laterals on the trunk, poles (service transformers) per lateral
        [1, 100].
    trunk_segment_km, lateral_span_km
        Trunk segment length (0, 50] and pole span on laterals (0, 10] [km].
    home_annual_kwh
        Annual consumption per home (0, 1e6] [kWh/yr]; default :data:`CA_HOME_ANNUAL_KWH`.
    power_factor
        Power factor of home loads (0, 1] [-].
    pv_share
        Share of homes with rooftop PV [0, 1] [-].
    pv_kw
        Rooftop PV size [0, 1000] [kW] (peak of the profile).
    source_vm_pu
        Voltage set-point of the substation bus [0.5, 1.5] [pu].
    seed
        Seed of the draws (transformer sizes, homes, profile types, shifts, PV homes), an
        integer >= 0.

    Returns
    -------
    BuiltFeeder

    Raises
    ------
    ConfigError
        An argument of the wrong type (e.g. a string, a boolean, a float count) or outside
        its range (the ranges are :data:`BUILDER_OPTIONS`, which feeder specs are checked
        against too).
    """
    _check_options(
        {
            "n_laterals": n_laterals,
            "transformers_per_lateral": transformers_per_lateral,
            "trunk_segment_km": trunk_segment_km,
            "lateral_span_km": lateral_span_km,
            "home_annual_kwh": home_annual_kwh,
            "power_factor": power_factor,
            "pv_share": pv_share,
            "pv_kw": pv_kw,
            "source_vm_pu": source_vm_pu,
            "seed": seed,
        }
    )
    rng = np.random.default_rng(seed)
    net = pp.create_empty_network(name="US residential 12.47 kV", f_hz=60.0)
    homes = _add_trunk_and_laterals(
        net,
        rng,
        n_laterals=n_laterals,
        transformers_per_lateral=transformers_per_lateral,
        trunk_segment_km=trunk_segment_km,
        lateral_span_km=lateral_span_km,
        source_vm_pu=source_vm_pu,
    )

    time_index, load_p, load_q = _home_profiles(rng, len(homes), home_annual_kwh, power_factor)
    for i, home in enumerate(homes):
        pp.create_load(
            net,
            home.bus,
            p_mw=load_p[:, i].max() / 1000,
            q_mvar=load_q[:, i].max() / 1000,
            name=home.name,
        )
    sgen_p = _add_rooftop_pv(net, rng, homes, len(time_index), pv_share=pv_share, pv_kw=pv_kw)
    return BuiltFeeder(
        net=net,
        time_index=time_index,
        load_p_kw=load_p,
        load_q_kvar=load_q,
        sgen_p_kw=sgen_p,
        households=np.ones(len(homes), dtype=int),
    )


#: Synthetic placement of the US feeder (Central Valley, California), schematic only:
#: origin [deg lon, deg lat] and degrees per km east and north.
_ORIGIN_LON_LAT = (-119.78, 36.74)
_DEG_PER_KM = (1 / 89.2, 1 / 111.0)


def _geo(x_km: float, y_km: float) -> tuple[float, float]:
    """Longitude and latitude [deg] of a point ``x_km`` east and ``y_km`` north of the origin."""
    return (_ORIGIN_LON_LAT[0] + x_km * _DEG_PER_KM[0], _ORIGIN_LON_LAT[1] + y_km * _DEG_PER_KM[1])


@dataclass(frozen=True)
class _Home:
    """One home: the secondary bus of its service transformer and its load name."""

    bus: int
    name: str


def _add_trunk_and_laterals(
    net: pp.pandapowerNet,
    rng: np.random.Generator,
    *,
    n_laterals: int,
    transformers_per_lateral: int,
    trunk_segment_km: float,
    lateral_span_km: float,
    source_vm_pu: float,
) -> list[_Home]:
    """Add the substation, the 336.4 kcmil ACSR trunk and its laterals (see :func:`_add_lateral`).

    Returns
    -------
    list of _Home
        Every home of the feeder, lateral by lateral and pole by pole.
    """
    sub = pp.create_bus(net, 12.47, name="Substation 12.47 kV", geodata=_geo(0, 0))
    pp.create_ext_grid(net, sub, vm_pu=source_vm_pu, name="Substation (LTC-regulated)")
    homes: list[_Home] = []
    prev = sub
    for k in range(n_laterals):
        node = pp.create_bus(
            net, 12.47, name=f"Trunk node {k + 1}", geodata=_geo((k + 1) * trunk_segment_km, 0)
        )
        pp.create_line_from_parameters(
            net,
            prev,
            node,
            trunk_segment_km,
            name=f"Trunk {k + 1}",
            type="ol",
            **CONDUCTORS["336_acsr"],
        )
        homes += _add_lateral(
            net,
            rng,
            node,
            k,
            x_km=(k + 1) * trunk_segment_km,
            poles=transformers_per_lateral,
            span_km=lateral_span_km,
        )
        prev = node
    return homes


def _add_lateral(
    net: pp.pandapowerNet,
    rng: np.random.Generator,
    node: int,
    k: int,
    *,
    x_km: float,
    poles: int,
    span_km: float,
) -> list[_Home]:
    """Add lateral ``k`` (1/0 ACSR) at trunk ``node``: its poles, service transformers, homes.

    Draws, per pole in order: the transformer size (25/50/75 kVA with probabilities
    0.45/0.35/0.2) and the homes per kVA (:data:`HOMES_PER_KVA`, at least 2 homes).

    Returns
    -------
    list of _Home
        The homes on this lateral, pole by pole.
    """
    homes: list[_Home] = []
    prev_lat = node
    side = 1 if k % 2 == 0 else -1
    for j in range(poles):
        y_km = side * (j + 1) * span_km
        pole = pp.create_bus(net, 12.47, name=f"L{k + 1} pole {j + 1}", geodata=_geo(x_km, y_km))
        pp.create_line_from_parameters(
            net,
            prev_lat,
            pole,
            span_km,
            name=f"L{k + 1} span {j + 1}",
            type="ol",
            **CONDUCTORS["1/0_acsr"],
        )
        prev_lat = pole
        kva = float(rng.choice([25.0, 50.0, 75.0], p=[0.45, 0.35, 0.2]))
        n_homes = max(2, round(kva * rng.uniform(*HOMES_PER_KVA)))
        sec = pp.create_bus(
            net, 0.24, name=f"L{k + 1} T{j + 1} secondary", geodata=_geo(x_km + 0.02, y_km)
        )
        pp.create_transformer_from_parameters(
            net,
            pole,
            sec,
            sn_mva=kva / 1000,
            vn_hv_kv=12.47,
            vn_lv_kv=0.24,
            vk_percent=SERVICE_XFMR["vk_percent"],
            vkr_percent=SERVICE_XFMR["vkr_percent"],
            pfe_kw=SERVICE_XFMR["pfe_kw_per_kva"] * kva,
            i0_percent=SERVICE_XFMR["i0_percent"],
            name=f"L{k + 1} T{j + 1} {kva:.0f} kVA",
        )
        homes += [_Home(sec, f"L{k + 1} T{j + 1} home {h + 1}") for h in range(n_homes)]
    return homes


def _home_profiles(
    rng: np.random.Generator, n_homes: int, home_annual_kwh: float, power_factor: float
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """One year of 15-minute home load profiles from SimBench's household profiles.

    Each home is a random convex mix of :data:`SIMBENCH_HOUSEHOLD_PROFILES` (Dirichlet
    weights, concentration 0.7), shifted by -4..4 steps (+/- 60 min) and rescaled to
    ``home_annual_kwh``; reactive power follows ``power_factor``.

    Returns
    -------
    time_index, load_p_kw, load_q_kvar
        Time stamps and the profiles [kW], [kvar], shape (time, home).
    """
    profiles = _read_simbench_profiles(
        "LoadProfile.csv", [f"{p}_pload" for p in SIMBENCH_HOUSEHOLD_PROFILES]
    )
    time_index = pd.DatetimeIndex(profiles.index)
    step_h = (time_index[1] - time_index[0]) / pd.Timedelta(hours=1)
    weights = rng.dirichlet(np.full(len(SIMBENCH_HOUSEHOLD_PROFILES), 0.7), size=n_homes)
    shifts = rng.integers(-4, 5, size=n_homes)  # 15-min steps: up to +/- 60 min
    base = profiles.to_numpy(dtype=float) @ weights.T  # (time, home)
    load_p = np.empty((len(time_index), n_homes))
    for i in range(n_homes):
        col = np.roll(base[:, i], shifts[i])
        load_p[:, i] = col * home_annual_kwh / (col.sum() * step_h)
    tan_phi = np.tan(np.arccos(power_factor))
    return time_index, load_p, load_p * tan_phi


def _add_rooftop_pv(
    net: pp.pandapowerNet,
    rng: np.random.Generator,
    homes: list[_Home],
    n_steps: int,
    *,
    pv_share: float,
    pv_kw: float,
) -> np.ndarray:
    """Give a share ``pv_share`` of the homes (drawn) rooftop PV of ``pv_kw`` [kW].

    The PV follows SimBench profile ``PV3`` scaled to a peak of ``pv_kw``, over ``n_steps``
    profile steps.

    Returns
    -------
    numpy.ndarray
        Generation [kW], shape (time, PV system), in ``net.sgen.index`` order.
    """
    pv_homes = np.flatnonzero(rng.random(len(homes)) < pv_share)
    pv_profile = _read_simbench_profiles("RESProfile.csv", ["PV3"])["PV3"].to_numpy(dtype=float)
    pv_profile = pv_profile / pv_profile.max()
    sgen_p = np.empty((n_steps, len(pv_homes)))
    for n, index in enumerate(pv_homes.tolist()):
        home = homes[index]
        pp.create_sgen(net, home.bus, p_mw=pv_kw / 1000, name=f"PV {home.name}", type="PV")
        sgen_p[:, n] = pv_profile * pv_kw
    return sgen_p


def build_ca_residential(
    *,
    n_laterals: int = 4,
    transformers_per_lateral: int = 6,
    trunk_segment_km: float = 0.8,
    lateral_span_km: float = 0.15,
    home_annual_kwh: float = CA_HOME_ANNUAL_KWH,
    power_factor: float = 0.95,
    pv_share: float = pv.PV_ADOPTION["residential"].share,
    pv_dc_kw: float = pv.PV_ADOPTION["residential"].dc_kw,
    source_vm_pu: float = 1.03,
    seed: int = 2016,
    size_to_peak: bool = True,
) -> BuiltFeeder:
    """Build the US residential feeder on California load shapes and pvlib rooftop PV.

    Topology and its draws are those of :func:`build_us_residential` with the same
    arguments (same ``seed``: same transformers and homes). Profiles differ:

    - home loads are :func:`gridplan.grid.loadshapes.customer_profiles` of the DOE/OpenEI
      TMY3 Long Beach residential shapes (CC BY 4.0), 15-minute, each home rescaled to
      ``home_annual_kwh``, with the diversity method calibrated to Kersting's diversity
      factors; summer-evening peaking (air conditioning);
    - a share ``pv_share`` of homes has a ``pv_dc_kw`` rooftop array modelled with pvlib on
      the Long Beach TMY3 weather (:func:`gridplan.grid.pv.pv_profiles_kw`); defaults from
      :data:`gridplan.grid.pv.PV_ADOPTION` (California, sourced there);
    - the time index is the nominal typical year
      (:data:`gridplan.grid.loadshapes.TYPICAL_YEAR_LABEL`), 35,040 quarter hours, local
      standard time. The feeder's ambient temperature series is
      :func:`gridplan.grid.pv.ambient_temperature_c`;
    - with ``size_to_peak``, a service transformer whose drawn size is below its homes'
      peak apparent power (the profile year, no PV) gets the smallest size of
      :data:`SERVICE_XFMR_SIZES_KVA` that carries it (:func:`_size_service_transformers`):
      the homes-per-kVA rule came from winter-peaking SimBench loads, and a utility sizes a
      transformer for its customers' peak (here the summer air-conditioning evening).

    Parameters
    ----------
    n_laterals, transformers_per_lateral, trunk_segment_km, lateral_span_km,
    home_annual_kwh, power_factor, source_vm_pu, seed
        As :func:`build_us_residential`.
    pv_share
        Share of homes with rooftop PV [0, 1] [-].
    pv_dc_kw
        Array size of each PV home [0, 1000] [kW-DC]; the sgen rating is its inverter AC
        rating (``pv_dc_kw / 1.2``, PVWatts DC/AC ratio).
    size_to_peak
        Upsize service transformers that the profile year's peak would overload (default
        ``True``; ``False`` keeps the drawn sizes).

    Returns
    -------
    BuiltFeeder

    Raises
    ------
    ConfigError
        An argument of the wrong type or outside its range (:data:`BUILDER_OPTIONS`).
    """
    options = dict(locals())
    try:
        check_options(options, BUILDER_OPTIONS["ca_residential"], "builder 'ca_residential'")
    except OptionError as exc:
        raise ConfigError(exc.reason) from None
    rng = np.random.default_rng(seed)
    net = pp.create_empty_network(name="California residential 12.47 kV", f_hz=60.0)
    homes = _add_trunk_and_laterals(
        net,
        rng,
        n_laterals=n_laterals,
        transformers_per_lateral=transformers_per_lateral,
        trunk_segment_km=trunk_segment_km,
        lateral_span_km=lateral_span_km,
        source_vm_pu=source_vm_pu,
    )
    load_p = loadshapes.customer_profiles(np.full(len(homes), home_annual_kwh), rng)
    load_q = load_p * np.tan(np.arccos(power_factor))
    for i, home in enumerate(homes):
        pp.create_load(
            net,
            home.bus,
            p_mw=load_p[:, i].max() / 1000,
            q_mvar=load_q[:, i].max() / 1000,
            name=home.name,
        )
    if size_to_peak:
        _size_service_transformers(net, load_p, load_q)
    pv_homes = np.flatnonzero(rng.random(len(homes)) < pv_share)
    ac_kw = pv_dc_kw / pv.PVSystem().dc_ac_ratio
    for index in pv_homes.tolist():
        home = homes[index]
        pp.create_sgen(net, home.bus, p_mw=ac_kw / 1000, name=f"PV {home.name}", type="PV")
    sgen_p = pv.pv_profiles_kw(np.full(len(pv_homes), pv_dc_kw))
    return BuiltFeeder(
        net=net,
        time_index=loadshapes.typical_year_index(15),
        load_p_kw=load_p,
        load_q_kvar=load_q,
        sgen_p_kw=sgen_p,
        households=np.ones(len(homes), dtype=int),
    )


#: Standard single-phase pole-mount transformer sizes [kVA] (ANSI/IEEE C57.12.20 ratings
#: of overhead distribution transformers, 25-167 kVA).
SERVICE_XFMR_SIZES_KVA = (25.0, 37.5, 50.0, 75.0, 100.0, 167.0)


def _size_service_transformers(
    net: pp.pandapowerNet, load_p_kw: np.ndarray, load_q_kvar: np.ndarray
) -> None:
    """Upsize each service transformer below its homes' peak apparent power.

    A transformer whose homes' coincident peak (``hypot(sum P, sum Q)`` over the profile
    year [kVA]) exceeds its rating gets the smallest :data:`SERVICE_XFMR_SIZES_KVA` size at
    or above that peak (the largest size if none is); its no-load loss and name follow the
    new size. Transformers within their rating are left as drawn.
    """
    load_bus = net.load.bus.to_numpy()
    for idx, row in net.trafo.iterrows():
        homes = load_bus == row.lv_bus
        peak_kva = float(np.hypot(load_p_kw[:, homes].sum(1), load_q_kvar[:, homes].sum(1)).max())
        kva = float(row.sn_mva) * 1000.0
        if peak_kva <= kva:
            continue
        bigger = [s for s in SERVICE_XFMR_SIZES_KVA if s >= peak_kva]
        new_kva = bigger[0] if bigger else SERVICE_XFMR_SIZES_KVA[-1]
        net.trafo.at[idx, "sn_mva"] = new_kva / 1000.0
        net.trafo.at[idx, "pfe_kw"] = SERVICE_XFMR["pfe_kw_per_kva"] * new_kva
        net.trafo.at[idx, "name"] = str(row["name"]).replace(f"{kva:.0f} kVA", f"{new_kva:g} kVA")


#: The options a feeder spec may give each builder (``network.options``), with their ranges.
#: Options both US residential builders take (topology, homes, source).
_US_TOPOLOGY_OPTIONS: dict[str, Option] = {
    "n_laterals": count(1, 100),
    "transformers_per_lateral": count(1, 100),
    "trunk_segment_km": number(0, 50, "km", low_open=True),
    "lateral_span_km": number(0, 10, "km", low_open=True),
    "home_annual_kwh": number(0, 1e6, "kWh/yr", low_open=True),
    "power_factor": number(0, 1, low_open=True),
    "pv_share": number(0, 1),
    "source_vm_pu": number(0.5, 1.5, "pu"),
    "seed": count(0),
}
BUILDER_OPTIONS: dict[str, Mapping[str, Option]] = {
    "us_residential": {**_US_TOPOLOGY_OPTIONS, "pv_kw": number(0, 1000, "kW")},
    "ca_residential": {
        **_US_TOPOLOGY_OPTIONS,
        "pv_dc_kw": number(0, 1000, "kW-DC"),
        "size_to_peak": flag(),
    },
}


def _check_options(options: dict[str, object]) -> None:
    """Check the arguments of :func:`build_us_residential` (types and ranges)."""
    try:
        check_options(options, BUILDER_OPTIONS["us_residential"], "builder 'us_residential'")
    except OptionError as exc:
        raise ConfigError(exc.reason) from None


BUILDERS: dict[str, Callable[..., BuiltFeeder]] = {
    "us_residential": build_us_residential,
    "ca_residential": build_ca_residential,
}

"""Feeder builders: networks gridplan constructs itself, with profiles of documented origin.

``us_residential`` builds a US-style overhead residential feeder: a 12.47 kV primary
(trunk and laterals) feeding single-phase-equivalent pole-mount service transformers of
25-75 kVA, each serving a handful of homes. In California the service transformer is usually
the first asset that EV charging overloads; this feeder lets that show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandapower as pp
import pandas as pd

from gridplan.core.errors import ConfigError

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
        Feeder size.
    trunk_segment_km, lateral_span_km
        Trunk segment length and pole span on laterals [km].
    home_annual_kwh
        Annual consumption per home [kWh/yr]; default :data:`CA_HOME_ANNUAL_KWH`.
    power_factor
        Power factor of home loads [-].
    pv_share
        Share of homes with rooftop PV [-].
    pv_kw
        Rooftop PV size [kW] (peak of the profile).
    source_vm_pu
        Voltage set-point of the substation bus [pu].
    seed
        Seed of the draws (transformer sizes, homes, profile types, shifts, PV homes).

    Returns
    -------
    BuiltFeeder
    """
    if n_laterals < 1 or transformers_per_lateral < 1:
        raise ConfigError("n_laterals and transformers_per_lateral must be >= 1")
    if home_annual_kwh <= 0:
        raise ConfigError(f"home_annual_kwh must be > 0 (got {home_annual_kwh})")
    if not 0 < power_factor <= 1:
        raise ConfigError(f"power_factor must be in (0, 1] (got {power_factor})")
    if not 0 <= pv_share <= 1:
        raise ConfigError(f"pv_share must be in [0, 1] (got {pv_share})")
    rng = np.random.default_rng(seed)
    net = pp.create_empty_network(name="US residential 12.47 kV", f_hz=60.0)
    lon0, lat0 = -119.78, 36.74  # synthetic placement (Central Valley), schematic only
    km_lon, km_lat = 1 / 89.2, 1 / 111.0

    def geo(x_km: float, y_km: float) -> tuple[float, float]:
        return (lon0 + x_km * km_lon, lat0 + y_km * km_lat)

    sub = pp.create_bus(net, 12.47, name="Substation 12.47 kV", geodata=geo(0, 0))
    pp.create_ext_grid(net, sub, vm_pu=source_vm_pu, name="Substation (LTC-regulated)")
    trunk = CONDUCTORS["336_acsr"]
    lateral = CONDUCTORS["1/0_acsr"]
    prev = sub
    loads: list[dict[str, object]] = []
    for k in range(n_laterals):
        node = pp.create_bus(
            net, 12.47, name=f"Trunk node {k + 1}", geodata=geo((k + 1) * trunk_segment_km, 0)
        )
        pp.create_line_from_parameters(
            net, prev, node, trunk_segment_km, name=f"Trunk {k + 1}", type="ol", **trunk
        )
        prev_lat = node
        side = 1 if k % 2 == 0 else -1
        for j in range(transformers_per_lateral):
            x, y = (k + 1) * trunk_segment_km, side * (j + 1) * lateral_span_km
            pole = pp.create_bus(net, 12.47, name=f"L{k + 1} pole {j + 1}", geodata=geo(x, y))
            pp.create_line_from_parameters(
                net,
                prev_lat,
                pole,
                lateral_span_km,
                name=f"L{k + 1} span {j + 1}",
                type="ol",
                **lateral,
            )
            prev_lat = pole
            kva = float(rng.choice([25.0, 50.0, 75.0], p=[0.45, 0.35, 0.2]))
            n_homes = max(2, round(kva * rng.uniform(*HOMES_PER_KVA)))
            sec = pp.create_bus(
                net, 0.24, name=f"L{k + 1} T{j + 1} secondary", geodata=geo(x + 0.02, y)
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
            for h in range(n_homes):
                loads.append({"bus": sec, "name": f"L{k + 1} T{j + 1} home {h + 1}"})
        prev = node

    profiles = _read_simbench_profiles(
        "LoadProfile.csv", [f"{p}_pload" for p in SIMBENCH_HOUSEHOLD_PROFILES]
    )
    time_index = pd.DatetimeIndex(profiles.index)
    step_h = (time_index[1] - time_index[0]) / pd.Timedelta(hours=1)
    n_homes_total = len(loads)
    # Each home: a random convex mix of the SimBench household profiles, shifted in time.
    weights = rng.dirichlet(np.full(len(SIMBENCH_HOUSEHOLD_PROFILES), 0.7), size=n_homes_total)
    shifts = rng.integers(-4, 5, size=n_homes_total)  # 15-min steps: up to +/- 60 min
    base = profiles.to_numpy(dtype=float) @ weights.T  # (time, home)
    load_p = np.empty((len(time_index), n_homes_total))
    for i in range(n_homes_total):
        col = np.roll(base[:, i], shifts[i])
        load_p[:, i] = col * home_annual_kwh / (col.sum() * step_h)
    tan_phi = np.tan(np.arccos(power_factor))
    load_q = load_p * tan_phi
    for i, spec in enumerate(loads):
        pp.create_load(
            net,
            spec["bus"],
            p_mw=load_p[:, i].max() / 1000,
            q_mvar=load_q[:, i].max() / 1000,
            name=str(spec["name"]),
        )
    pv_homes = np.flatnonzero(rng.random(n_homes_total) < pv_share)
    pv_profile = _read_simbench_profiles("RESProfile.csv", ["PV3"])["PV3"].to_numpy(dtype=float)
    pv_profile = pv_profile / pv_profile.max()
    sgen_p = np.empty((len(time_index), len(pv_homes)))
    for n, home in enumerate(pv_homes.tolist()):
        pp.create_sgen(
            net, loads[home]["bus"], p_mw=pv_kw / 1000, name=f"PV {loads[home]['name']}", type="PV"
        )
        sgen_p[:, n] = pv_profile * pv_kw
    return BuiltFeeder(
        net=net,
        time_index=time_index,
        load_p_kw=load_p,
        load_q_kvar=load_q,
        sgen_p_kw=sgen_p,
        households=np.ones(n_homes_total, dtype=int),
    )


BUILDERS = {"us_residential": build_us_residential}

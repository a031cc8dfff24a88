"""Transformer thermal model (IEEE C57.91-2011 Clause 7) and the planning criteria on it.

The top-oil rise over ambient and the winding hottest-spot rise over top oil each follow a
first-order exponential response to the load (IEEE C57.91-2011, Clause 7):

- ultimate top-oil rise ``Δθ_TO,U = Δθ_TO,R · ((K² R + 1) / (R + 1))^n``;
- ultimate hot-spot rise over top oil ``Δθ_H,U = Δθ_H,R · K^(2m)``;
- over a step of length ``Δt`` with the load held, ``Δθ = Δθ_U + (Δθ_i − Δθ_U) ·
  exp(−Δt / τ)`` (τ = τ_TO for the oil, τ_w for the winding);
- top oil ``θ_TO = θ_A + Δθ_TO`` and hot spot ``θ_H = θ_A + Δθ_TO + Δθ_H`` [°C].

This is the difference-equation form of Clause 7: the step response is exact for a load
and ambient held constant over each step, so the result does not depend on the step
length for such inputs. Simplification (stated): the oil time constant is the rated one at
every load (Clause 7 corrects τ_TO for the initial and ultimate rises when ``n != 1``; IEC
60076-7's exponential method makes the same simplification).

Insulation aging (IEEE C57.91-2011 Clause 5, 65 °C rise, thermally upgraded paper, 110 °C
reference hot spot): the aging acceleration factor ``F_AA = exp(15000/383 −
15000/(θ_H + 273))``, the equivalent aging factor ``F_EQA = Σ F_AA Δt / Σ Δt``, and the
loss of life ``F_EQA · t`` [h of normal life at 110 °C]; the normal insulation life is
180 000 h (C57.91-2011 Table 2, the distribution-transformer functional-life criterion).

Initial condition: steady state at the first step's load and ambient, then a warm-up: the
first ``warmup_h`` hours (one day by default) are run once from that state and their end
state starts the period ("run the first day twice"). ``warmup_h=0`` starts from the
steady state itself.

Parameters per kind of transformer (pole-mount, pad-mount) live in
``gridplan/data/thermal_parameters.csv`` with a source per figure
(:func:`load_thermal_parameters`). The planning criteria (:class:`ThermalCriterion`) judge
each asset by today's loading rule (:func:`gridplan.planning.needs.need_flags`), by its
peak hot-spot temperature, or by its loss of life per year (:func:`evaluate_criterion`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from gridplan.core.errors import ConfigError
from gridplan.core.io import read_text_table
from gridplan.planning.needs import need_flags

__all__ = [
    "AGING_REFERENCE_HOT_SPOT_C",
    "CRITERION_KINDS",
    "CRITERION_UNITS",
    "HOURS_PER_YEAR",
    "NORMAL_INSULATION_LIFE_H",
    "THERMAL_PARAMETER_NAMES",
    "CriterionResult",
    "ThermalCriterion",
    "ThermalNeeds",
    "ThermalParameters",
    "ThermalResult",
    "aging_acceleration_factor",
    "default_criteria",
    "evaluate_criteria",
    "evaluate_criterion",
    "load_thermal_parameters",
    "thermal_needs",
    "thermal_response",
    "ultimate_rises",
]

#: Reference hottest-spot temperature of 65 °C rise insulation [°C] (IEEE C57.91-2011
#: Clause 5: F_AA = 1 at 110 °C, 30 °C ambient + 80 °C rated hot-spot rise).
AGING_REFERENCE_HOT_SPOT_C = 110.0
#: Aging constant B of the Arrhenius expression [K] (IEEE C57.91-2011 Eq. 2).
AGING_B_K = 15000.0
#: Normal insulation life at the reference hot spot [h] (IEEE C57.91-2011 Table 2:
#: distribution-transformer functional life test criterion, 180 000 h = 20.55 years).
NORMAL_INSULATION_LIFE_H = 180_000.0
#: Hours in a (non-leap) year [h]; loss of life per year is scaled to it.
HOURS_PER_YEAR = 8760.0

#: Parameter names of a row group in the parameter table, in dataclass order.
THERMAL_PARAMETER_NAMES: tuple[str, ...] = (
    "top_oil_rise_c",
    "hot_spot_rise_c",
    "loss_ratio",
    "oil_exponent",
    "winding_exponent",
    "oil_time_constant_h",
    "winding_time_constant_h",
    "hot_spot_limit_c",
)
_TABLE_COLUMNS: tuple[str, ...] = ("kind", "parameter", "value", "unit", "source", "status")
_STATUSES: tuple[str, ...] = ("standard", "published", "assumption")
_DEFAULT_TABLE = "thermal_parameters.csv"


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ThermalParameters:
    """Clause 7 thermal parameters of one kind of liquid-filled transformer.

    Attributes
    ----------
    kind
        Name of the kind (``"pole_mount"``, ``"pad_mount"``, or a utility's own).
    top_oil_rise_c
        Rated top-oil rise over ambient at rated load, Δθ_TO,R [°C].
    hot_spot_rise_c
        Rated winding hottest-spot rise over top oil at rated load, Δθ_H,R [°C].
    loss_ratio
        Ratio of load loss at rated load to no-load loss, R [-].
    oil_exponent
        Oil exponent n [-] (ONAN 0.8, C57.91-2011 Clause 7).
    winding_exponent
        Winding exponent m [-] (ONAN 0.8).
    oil_time_constant_h
        Oil time constant at rated load, τ_TO,R [h].
    winding_time_constant_h
        Winding time constant, τ_w [h].
    hot_spot_limit_c
        Hottest-spot temperature limit for planning [°C] (the default limit of the
        hot-spot criterion).
    sources
        Source of each figure, ``{parameter: source}`` (empty when given in Python).
    """

    kind: str
    top_oil_rise_c: float
    hot_spot_rise_c: float
    loss_ratio: float
    oil_exponent: float
    winding_exponent: float
    oil_time_constant_h: float
    winding_time_constant_h: float
    hot_spot_limit_c: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in THERMAL_PARAMETER_NAMES:
            value = getattr(self, name)
            number = isinstance(value, int | float | np.integer | np.floating)
            if not (number and not isinstance(value, bool) and math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"thermal parameters {self.kind!r}: {name} must be a finite number > 0, "
                    f"got {value!r}",
                    field=name,
                )

    @property
    def rated_hot_spot_c(self) -> float:
        """Hot spot at rated load over a 30 °C ambient [°C] (110 °C for 65 °C rise units)."""
        return 30.0 + self.top_oil_rise_c + self.hot_spot_rise_c


def _default_table_path() -> Path:
    return Path(str(resources.files("gridplan").joinpath("data", _DEFAULT_TABLE)))


def load_thermal_parameters(path: str | Path | None = None) -> dict[str, ThermalParameters]:
    """Read a thermal parameter table: one :class:`ThermalParameters` per kind.

    The table is long: one row per (``kind``, ``parameter``) with ``value``, ``unit``,
    ``source`` and ``status`` (``standard``, ``published`` or ``assumption``). Every kind
    must give every parameter of :data:`THERMAL_PARAMETER_NAMES` once, with a source.

    Parameters
    ----------
    path
        The table; default the bundled ``gridplan/data/thermal_parameters.csv`` (read once
        per process).

    Raises
    ------
    ConfigError
        A missing column, parameter or source, an unknown parameter or status, or a value
        that is not a number > 0; the message names the file, the row and the column.
    """
    if path is None:
        return dict(_bundled_parameters())
    return _read_parameters(Path(path))


@functools.cache
def _bundled_parameters() -> tuple[tuple[str, ThermalParameters], ...]:
    return tuple(_read_parameters(_default_table_path()).items())


def _read_parameters(path: Path) -> dict[str, ThermalParameters]:
    table = read_text_table(path, _TABLE_COLUMNS, "the thermal parameter table")
    values: dict[str, dict[str, float]] = {}
    sources: dict[str, dict[str, str]] = {}
    for pos, row in enumerate(table.itertuples(index=False), start=2):  # line 1: header
        kind, name = str(row.kind).strip(), str(row.parameter).strip()
        _check_row(path, pos, kind, name, row, values)
        values.setdefault(kind, {})[name] = float(row.value)
        sources.setdefault(kind, {})[name] = str(row.source).strip()
    out = {}
    for kind, given in values.items():
        absent = [n for n in THERMAL_PARAMETER_NAMES if n not in given]
        if absent:
            raise ConfigError(f"kind {kind!r} lacks parameters {absent}", file=path, field="kind")
        out[kind] = ThermalParameters(kind=kind, **given, sources=sources[kind])
    if not out:
        raise ConfigError("the thermal parameter table has no rows", file=path)
    return out


def _check_row(
    path: Path, pos: int, kind: str, name: str, row: Any, seen: Mapping[str, Mapping]
) -> None:
    """Raise a ConfigError naming the row and column of the first problem of a row."""
    value = pd.to_numeric(pd.Series([row.value]), errors="coerce").iloc[0]
    checks = (
        ("kind", bool(kind), "a kind name"),
        ("parameter", name in THERMAL_PARAMETER_NAMES, f"one of {list(THERMAL_PARAMETER_NAMES)}"),
        ("parameter", name not in seen.get(kind, {}), "each parameter once per kind"),
        ("value", bool(np.isfinite(value) and value > 0), "a finite number > 0"),
        ("source", bool(str(row.source).strip()), "the source of the figure"),
        ("status", str(row.status).strip() in _STATUSES, f"one of {list(_STATUSES)}"),
    )
    for column, ok, expected in checks:
        if not ok:
            raise ConfigError(
                f"expected {expected}, got {getattr(row, column)!r}",
                file=path,
                field=f"row {pos}/{column}",
            )


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True, eq=False)
class ThermalResult:
    """Temperatures and insulation aging of transformers over a simulated period.

    Arrays are ``(time, asset)`` (or ``(time, ...)`` for other trailing shapes) and
    ``(asset,)`` for the summaries. The three series are ``None`` when the model ran with
    ``keep_series=False`` (summaries only, memory bounded by a few columns at a time).

    Attributes
    ----------
    top_oil_c
        Top-oil temperature θ_TO at the end of each step [°C].
    hot_spot_c
        Winding hottest-spot temperature θ_H at the end of each step [°C].
    aging_factor
        Aging acceleration factor F_AA of each step [-] (1 at 110 °C): its mean over the
        step, from the closed-form response inside the step.
    equivalent_aging
        Equivalent aging factor F_EQA over the period [-] (weighted by ``year_weight_h``).
    loss_of_life_h
        Equivalent aging over the simulated period, ``Σ F_AA Δt`` [h at 110 °C].
    loss_of_life_h_per_year
        Equivalent aging over a year that the period stands for [h/yr] (normal aging is
        8760 h/yr, F_EQA = 1).
    peak_hot_spot_c, peak_top_oil_c
        Highest hot-spot temperature of the period (inside steps too) and highest
        end-of-step top-oil temperature [°C].
    step_h
        Step length [h].
    """

    top_oil_c: np.ndarray | None
    hot_spot_c: np.ndarray | None
    aging_factor: np.ndarray | None
    equivalent_aging: np.ndarray
    loss_of_life_h: np.ndarray
    loss_of_life_h_per_year: np.ndarray
    peak_hot_spot_c: np.ndarray
    peak_top_oil_c: np.ndarray
    step_h: float

    @property
    def loss_of_life_pct_per_year(self) -> np.ndarray:
        """Loss of life per year [% of the 180 000 h normal insulation life]."""
        return self.loss_of_life_h_per_year / NORMAL_INSULATION_LIFE_H * 100.0


def _param_arrays(
    params: ThermalParameters | Sequence[ThermalParameters], trailing: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Each parameter as an array broadcastable to ``trailing`` (one value per asset)."""
    if isinstance(params, ThermalParameters):
        return {n: np.asarray(getattr(params, n), dtype=float) for n in THERMAL_PARAMETER_NAMES}
    n_asset = trailing[-1] if trailing else 1
    if len(params) != n_asset:
        raise ConfigError(
            f"expected one ThermalParameters per asset ({n_asset}), got {len(params)}",
            field="params",
        )
    return {
        n: np.array([getattr(p, n) for p in params], dtype=float) for n in THERMAL_PARAMETER_NAMES
    }


def ultimate_rises(
    load_pu: np.ndarray, params: ThermalParameters | Sequence[ThermalParameters]
) -> tuple[np.ndarray, np.ndarray]:
    """Steady-state rises for a held load (IEEE C57.91-2011 Clause 7).

    Parameters
    ----------
    load_pu
        Load [per unit of nameplate], shape (time, asset) or anything broadcastable with
        the parameters (one per asset along the last axis).
    params
        One :class:`ThermalParameters` for all assets, or one per asset.

    Returns
    -------
    (top_oil_rise_c, hot_spot_rise_c)
        Ultimate top-oil rise over ambient Δθ_TO,U and hot-spot rise over top oil Δθ_H,U
        [°C], each the shape of ``load_pu``.
    """
    k = np.asarray(load_pu, dtype=float)
    return _ultimate(k, _param_arrays(params, k.shape[1:] if k.ndim > 1 else k.shape))


def _ultimate(load_pu: np.ndarray, p: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ultimate_rises` on parameter arrays."""
    k2 = np.square(load_pu)  # |K|²: a reverse flow heats like a forward one
    r = p["loss_ratio"]
    top = p["top_oil_rise_c"] * ((k2 * r + 1.0) / (r + 1.0)) ** p["oil_exponent"]
    hot = p["hot_spot_rise_c"] * k2 ** p["winding_exponent"]
    return top, hot


def _first_order(ultimate: np.ndarray, decay: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """``x_t = u_t + (x_{t−1} − u_t)·a`` along axis 0, ``x_{−1} = initial``; ``a`` per column.

    A first-order IIR filter (``scipy.signal.lfilter``), one call per distinct decay.
    """
    out = np.empty_like(ultimate)
    if not out.size:
        return out
    flat_u = ultimate.reshape(len(ultimate), -1)
    flat_out = out.reshape(len(ultimate), -1)
    a_col = np.broadcast_to(decay, ultimate.shape[1:]).reshape(-1)
    x0 = np.broadcast_to(initial, ultimate.shape[1:]).reshape(-1)
    for a in np.unique(a_col):
        cols = np.flatnonzero(a_col == a)
        zi = (a * x0[cols])[None, :]
        flat_out[:, cols] = lfilter([1.0 - a], [1.0, -a], flat_u[:, cols], axis=0, zi=zi)[0]
    return out


def _fill_load(load_pu: np.ndarray) -> np.ndarray:
    """Forward-fill NaN loads along time (a leading NaN counts as no load)."""
    bad = np.isnan(load_pu)
    if not bad.any():
        return load_pu
    idx = np.where(~bad, np.arange(len(load_pu)).reshape((-1,) + (1,) * (load_pu.ndim - 1)), 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    filled = np.take_along_axis(load_pu, idx, axis=0)
    return np.nan_to_num(filled, nan=0.0)


def _ambient_like(ambient_c: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
    """The ambient [°C] broadcast to the load's shape; (time,) applies to every asset."""
    ambient = np.asarray(ambient_c, dtype=float)
    if ambient.ndim == 1:
        ambient = ambient.reshape((-1,) + (1,) * (len(shape) - 1))
    try:
        out = np.broadcast_to(ambient, shape)
    except ValueError:
        raise ConfigError(
            f"ambient_c of shape {np.shape(ambient_c)} does not fit the load {shape}: "
            "expected (time,), (time, asset) or a scalar [°C]",
            field="ambient_c",
        ) from None
    if not np.all(np.isfinite(out)):
        raise ConfigError("ambient_c must be finite temperatures [°C]", field="ambient_c")
    return out


def thermal_response(
    load_pu: np.ndarray,
    ambient_c: np.ndarray | float,
    step_h: float,
    params: ThermalParameters | Sequence[ThermalParameters],
    *,
    warmup_h: float = 24.0,
    year_weight_h: np.ndarray | None = None,
    aging_substep_h: float = 5.0 / 60.0,
    keep_series: bool = True,
) -> ThermalResult:
    """Top-oil and hot-spot temperatures and insulation aging over a period.

    Parameters
    ----------
    load_pu
        Load of each transformer per step [per unit of nameplate], shape (time, asset);
        held over the step. NaN steps (power flow not converged) take the previous
        step's load.
    ambient_c
        Ambient temperature per step [°C], shape (time,) (one ambient for all assets),
        (time, asset), or a scalar.
    step_h
        Step length [h].
    params
        One :class:`ThermalParameters` for all assets, or one per asset (last axis).
    warmup_h
        Warm-up [h]: the first ``warmup_h`` hours are run once from the steady state at
        the first step's load and ambient, and their end state starts the period. Default
        one day ("run the first day twice"); 0 starts from the steady state.
    year_weight_h
        Hours of a year each step stands for [h], shape (time,). Default: the period
        stands for a whole year evenly (``step_h · 8760 / period_h`` each). Give it when
        the simulated days are representative periods of unequal weight.
    aging_substep_h
        Longest sub-step for the aging integral and the peak hot spot [h] (default
        5 min, about the winding time constant): inside each step the temperatures follow
        the closed-form response, and F_AA is averaged over sub-step midpoints. The
        temperatures returned are those at the end of each step.
    keep_series
        Keep the temperature and F_AA series (time, asset); ``False`` keeps the
        summaries only (what the planning criteria need), with memory bounded by a chunk
        of columns.

    Returns
    -------
    ThermalResult
        Temperatures per step and aging summaries per asset.
    """
    for name, value in (("step_h", step_h), ("aging_substep_h", aging_substep_h)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a finite number > 0 [h], got {value!r}", field=name)
    load = _fill_load(np.asarray(load_pu, dtype=float))
    if load.ndim == 1:
        load = load[:, None]
    shape = load.shape
    n_time = shape[0]
    n_col = math.prod(shape[1:])
    load2 = load.reshape(n_time, n_col)
    ambient2 = _ambient_like(ambient_c, shape).reshape(n_time, n_col)
    p = {
        n: np.broadcast_to(v, shape[1:]).reshape(-1)
        for n, v in _param_arrays(params, shape[1:]).items()
    }
    weight = _year_weights(year_weight_h, n_time)
    steps = _Steps(step_h, min(round(max(warmup_h, 0.0) / step_h), n_time), aging_substep_h)
    out = _Columns.empty(n_time, n_col, keep_series)
    width = max(1, _CHUNK_ELEMENTS // max(n_time, 1))
    for first in range(0, n_col if n_time else 0, width):
        cols = slice(first, first + width)
        _simulate_columns(
            load2[:, cols],
            ambient2[:, cols],
            {n: v[cols] for n, v in p.items()},
            steps,
            weight,
            out.part(cols),
        )
    return out.result(shape, step_h, float(weight.sum()))


def _year_weights(year_weight_h: np.ndarray | None, n_time: int) -> np.ndarray:
    """Hours of a year each step stands for, checked; default the year spread evenly."""
    if year_weight_h is None:
        return np.full(n_time, HOURS_PER_YEAR / n_time) if n_time else np.zeros(0)
    weight = np.asarray(year_weight_h, dtype=float)
    if weight.shape != (n_time,) or not np.all(np.isfinite(weight) & (weight >= 0)):
        raise ConfigError(
            f"year_weight_h must be {n_time} finite hours >= 0, one per step",
            field="year_weight_h",
        )
    return weight


#: Columns simulated together: about 2 MiB per (time, column) work array.
_CHUNK_ELEMENTS = 2**18


@dataclass(frozen=True)
class _Steps:
    step_h: float
    n_warm: int
    substep_h: float


@dataclass(frozen=True, eq=False)
class _Columns:
    """What the simulation of each chunk of columns writes: the series (time, column),
    or ``None`` when not kept, and the summaries per column."""

    top_oil_c: np.ndarray | None
    hot_spot_c: np.ndarray | None
    aging_factor: np.ndarray | None
    faa_sum: np.ndarray  # Σ F_AA over steps [-]
    faa_weighted: np.ndarray  # Σ F_AA · year weight [h]
    peak_hot_spot_c: np.ndarray
    peak_top_oil_c: np.ndarray

    @classmethod
    def empty(cls, n_time: int, n_col: int, keep_series: bool) -> _Columns:
        def series() -> np.ndarray | None:
            return np.empty((n_time, n_col)) if keep_series else None

        def nan() -> np.ndarray:
            return np.full(n_col, np.nan)

        return cls(series(), series(), series(), np.zeros(n_col), np.zeros(n_col), nan(), nan())

    def part(self, cols: slice) -> _Columns:
        """The same arrays for some columns (views: writing to them fills ``self``)."""

        def sub(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[..., cols]

        return _Columns(
            sub(self.top_oil_c),
            sub(self.hot_spot_c),
            sub(self.aging_factor),
            self.faa_sum[cols],
            self.faa_weighted[cols],
            self.peak_hot_spot_c[cols],
            self.peak_top_oil_c[cols],
        )

    def result(self, shape: tuple[int, ...], step_h: float, weight_sum: float) -> ThermalResult:
        """The :class:`ThermalResult`, arrays back in the input's shape."""
        trailing = shape[1:]

        def series(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a.reshape(shape)

        per_year = self.faa_weighted.reshape(trailing)
        equivalent = per_year / weight_sum if weight_sum > 0 else np.full(trailing, np.nan)
        return ThermalResult(
            top_oil_c=series(self.top_oil_c),
            hot_spot_c=series(self.hot_spot_c),
            aging_factor=series(self.aging_factor),
            equivalent_aging=equivalent,
            loss_of_life_h=self.faa_sum.reshape(trailing) * step_h,
            loss_of_life_h_per_year=per_year,
            peak_hot_spot_c=self.peak_hot_spot_c.reshape(trailing),
            peak_top_oil_c=self.peak_top_oil_c.reshape(trailing),
            step_h=step_h,
        )


def _simulate_columns(
    load: np.ndarray,
    ambient: np.ndarray,
    p: Mapping[str, np.ndarray],
    steps: _Steps,
    weight: np.ndarray,
    out: _Columns,
) -> None:
    """Temperatures, F_AA and their summaries of some columns, into ``out``."""
    top_u, hot_u = _ultimate(load, p)
    tau_oil, tau_wdg = p["oil_time_constant_h"], p["winding_time_constant_h"]
    a_oil, a_wdg = np.exp(-steps.step_h / tau_oil), np.exp(-steps.step_h / tau_wdg)
    top0, hot0 = top_u[0], hot_u[0]
    if steps.n_warm:
        top0 = _first_order(top_u[: steps.n_warm], a_oil, top0)[-1]
        hot0 = _first_order(hot_u[: steps.n_warm], a_wdg, hot0)[-1]
    top_rise = _first_order(top_u, a_oil, top0)
    hot_rise = _first_order(hot_u, a_wdg, hot0)
    top_oil = np.add(ambient, top_rise, out=out.top_oil_c)
    hot_spot = np.add(top_oil, hot_rise, out=out.hot_spot_c)
    out.peak_top_oil_c[:] = top_oil.max(axis=0)
    end_peak = hot_spot.max(axis=0)
    del top_oil, hot_spot
    # inside step t the rise starts from the end of step t − 1: d = start − ultimate
    d_top, d_hot = top_rise, hot_rise  # reused in place
    d_top[1:] = top_rise[:-1] - top_u[1:]
    d_top[0] = top0 - top_u[0]
    d_hot[1:] = hot_rise[:-1] - hot_u[1:]
    d_hot[0] = hot0 - hot_u[0]
    ultimate = top_u
    ultimate += hot_u
    ultimate += ambient
    del hot_u
    faa = out.aging_factor if out.aging_factor is not None else np.empty(load.shape)
    peak = _aging_within_steps(ultimate, d_top, d_hot, (tau_oil, tau_wdg), steps, faa)
    out.peak_hot_spot_c[:] = np.maximum(peak, end_peak)
    out.faa_sum[:] = faa.sum(axis=0)
    out.faa_weighted[:] = weight @ faa


def _aging_within_steps(
    ultimate: np.ndarray,
    d_top: np.ndarray,
    d_hot: np.ndarray,
    taus: tuple[np.ndarray, np.ndarray],
    steps: _Steps,
    faa: np.ndarray,
) -> np.ndarray:
    """Mean F_AA over each step into ``faa``; the highest hot spot at the sub-step
    midpoints per column [°C].

    Inside a step the hot spot is ``θ(s) = ultimate + d_top·exp(−s/τ_TO) +
    d_hot·exp(−s/τ_w)`` (the closed-form Clause 7 response, load held); F_AA is averaged
    over the midpoints of ``ceil(Δt / substep)`` sub-steps.
    """
    n_sub = max(1, math.ceil(steps.step_h / steps.substep_h - 1e-9))
    faa[:] = 0.0
    peak = np.full(ultimate.shape[1], -np.inf)
    theta = np.empty(ultimate.shape)
    work = np.empty(ultimate.shape)
    for j in range(n_sub):
        s_h = (j + 0.5) * steps.step_h / n_sub
        np.multiply(d_top, np.exp(-s_h / taus[0]), out=theta)
        np.multiply(d_hot, np.exp(-s_h / taus[1]), out=work)
        theta += work
        theta += ultimate  # hot spot s_h into every step [°C]
        np.maximum(peak, theta.max(axis=0), out=peak)
        _aging_factor_into(theta, work)
        faa += work
    faa /= n_sub
    return peak


def _aging_factor_into(hot_spot_c: np.ndarray, out: np.ndarray) -> None:
    """:func:`aging_acceleration_factor` written into ``out`` (no temporaries)."""
    np.add(hot_spot_c, 273.0, out=out)
    np.divide(-AGING_B_K, out, out=out)
    out += AGING_B_K / (AGING_REFERENCE_HOT_SPOT_C + 273.0)
    np.exp(out, out=out)


def aging_acceleration_factor(hot_spot_c: np.ndarray | float) -> np.ndarray:
    """Aging acceleration factor F_AA of 65 °C rise insulation [-].

    ``F_AA = exp(15000/383 − 15000/(θ_H + 273))`` (IEEE C57.91-2011 Eq. 2): 1 at the
    110 °C reference hot spot, about 2 at 116 °C, 17 at 140 °C.

    Parameters
    ----------
    hot_spot_c
        Winding hottest-spot temperature θ_H [°C].
    """
    theta = np.asarray(hot_spot_c, dtype=float)
    return np.exp(AGING_B_K / (AGING_REFERENCE_HOT_SPOT_C + 273.0) - AGING_B_K / (theta + 273.0))


# --------------------------------------------------------------------------- criteria
#: The planning criteria: today's loading rule, a hot-spot limit, a loss-of-life limit.
CRITERION_KINDS: tuple[str, ...] = ("loading", "hot_spot", "loss_of_life")
#: Unit of each criterion's limit and deciding quantity.
CRITERION_UNITS: Mapping[str, str] = {
    "loading": "% of nameplate (limit); h over it (deciding quantity)",
    "hot_spot": "degC",
    "loss_of_life": "h/yr",
}


@dataclass(frozen=True)
class ThermalCriterion:
    """A planning criterion for one kind of asset, with the source of its limit.

    Attributes
    ----------
    kind
        ``"loading"`` (% of nameplate with allowed hours: today's rule,
        :func:`gridplan.planning.needs.need_flags`), ``"hot_spot"`` (peak hottest-spot
        temperature [°C] above ``limit``) or ``"loss_of_life"`` (equivalent aging per year
        [h/yr] above ``limit``; 8760 h/yr is normal aging, F_EQA = 1).
    limit
        The limit in the criterion's unit (:data:`CRITERION_UNITS`). For ``"loading"``,
        ``None`` means each asset's own planning limit (``limit_pct`` of the feeder's
        asset table), passed to :func:`evaluate_criterion`.
    allowed_hours
        Hours over the limit allowed per simulated period [h] (``"loading"`` only).
    source
        Where the limit comes from (a standard, a utility's practice, a study's choice).
    """

    kind: str
    limit: float | None = None
    allowed_hours: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in CRITERION_KINDS:
            raise ConfigError(
                f"unknown criterion {self.kind!r}; valid: {list(CRITERION_KINDS)}", field="kind"
            )
        if self.limit is None and self.kind != "loading":
            raise ConfigError(f"criterion {self.kind!r} needs a limit", field="limit")
        if self.limit is not None and not (math.isfinite(self.limit) and self.limit > 0):
            raise ConfigError(
                f"limit must be a finite number > 0, got {self.limit!r}", field="limit"
            )
        if not (math.isfinite(self.allowed_hours) and self.allowed_hours >= 0):
            raise ConfigError(
                f"allowed_hours must be a finite number >= 0 [h], got {self.allowed_hours!r}",
                field="allowed_hours",
            )

    @property
    def unit(self) -> str:
        """Unit of the limit and of the deciding quantity."""
        return CRITERION_UNITS[self.kind]


@dataclass(frozen=True, eq=False)
class CriterionResult:
    """Need flags and the quantity that decided them, per asset.

    Attributes
    ----------
    need
        Whether each asset violates its criterion, shape (asset,).
    value
        The deciding quantity per asset: hours over the loading limit [h], peak hot spot
        [°C], or loss of life [h/yr], shape (asset,); NaN where the criterion had no
        thermal result to judge.
    limit
        The limit each asset was judged against (its criterion's unit), shape (asset,).
    criterion
        Name of each asset's criterion (:data:`CRITERION_KINDS`), shape (asset,).
    """

    need: np.ndarray
    value: np.ndarray
    limit: np.ndarray
    criterion: np.ndarray


def evaluate_criterion(
    criterion: ThermalCriterion,
    *,
    loading_pct: np.ndarray | None = None,
    thermal: ThermalResult | None = None,
    step_h: float | None = None,
    asset_limit_pct: np.ndarray | None = None,
    unsolved_over: bool = False,
) -> CriterionResult:
    """Judge every asset (columns) by one criterion.

    Parameters
    ----------
    criterion
        The criterion.
    loading_pct
        Asset loading [% of nameplate], (time, asset); needed by ``"loading"``.
    thermal
        The assets' thermal result (:func:`thermal_response`); needed by ``"hot_spot"``
        and ``"loss_of_life"``.
    step_h
        Step length [h]; needed by ``"loading"``.
    asset_limit_pct
        Each asset's own planning limit [%], (asset,); used by ``"loading"`` when the
        criterion's ``limit`` is ``None``.
    unsolved_over
        ``"loading"`` only: count non-converged (NaN) steps as over the limit
        (:func:`~gridplan.planning.needs.need_flags`).

    Returns
    -------
    CriterionResult
    """
    if criterion.kind == "loading":
        return _loading_need(criterion, loading_pct, step_h, asset_limit_pct, unsolved_over)
    if thermal is None:
        raise ConfigError(f"criterion {criterion.kind!r} needs a thermal result", field="thermal")
    value = thermal.peak_hot_spot_c if criterion.kind == "hot_spot" else (
        thermal.loss_of_life_h_per_year
    )  # fmt: skip
    value = np.asarray(value, dtype=float)
    limit = np.full(value.shape, float(criterion.limit or 0.0))
    need = np.nan_to_num(value, nan=-np.inf) > limit
    return CriterionResult(need, value, limit, np.full(value.shape, criterion.kind, dtype=object))


def _loading_need(
    criterion: ThermalCriterion,
    loading_pct: np.ndarray | None,
    step_h: float | None,
    asset_limit_pct: np.ndarray | None,
    unsolved_over: bool,
) -> CriterionResult:
    if loading_pct is None or step_h is None:
        raise ConfigError("criterion 'loading' needs loading_pct and step_h", field="loading_pct")
    loading = np.asarray(loading_pct, dtype=float)
    n_asset = loading.shape[1]
    if criterion.limit is not None:
        limit = np.full(n_asset, float(criterion.limit))
    elif asset_limit_pct is not None:
        limit = np.broadcast_to(np.asarray(asset_limit_pct, dtype=float), (n_asset,)).copy()
    else:
        raise ConfigError(
            "criterion 'loading' without a limit needs each asset's limit (asset_limit_pct)",
            field="limit",
        )
    allowed = np.full(n_asset, criterion.allowed_hours)
    need = need_flags(loading, limit, allowed, step_h, unsolved_over=unsolved_over)
    over = np.nan_to_num(loading, nan=0.0) > limit
    if unsolved_over:
        over |= np.isnan(loading)
    hours = over.sum(axis=0) * step_h
    return CriterionResult(need, hours, limit, np.full(n_asset, "loading", dtype=object))


def evaluate_criteria(
    criteria: Sequence[ThermalCriterion],
    *,
    loading_pct: np.ndarray | None = None,
    thermal: ThermalResult | None = None,
    thermal_columns: Sequence[int] | np.ndarray | None = None,
    step_h: float | None = None,
    asset_limit_pct: np.ndarray | None = None,
    unsolved_over: bool = False,
) -> CriterionResult:
    """Judge each asset by its own criterion (one per asset, e.g. by asset kind).

    Same arguments as :func:`evaluate_criterion`, with ``criteria`` one per asset (column
    of ``loading_pct``). Assets sharing a criterion are judged together.

    Parameters
    ----------
    thermal_columns
        The asset (column) of each column of ``thermal``; default: ``thermal`` covers every
        asset in order. Every asset with a thermal criterion must be among them (give lines
        the ``"loading"`` criterion).

    Returns
    -------
    CriterionResult
        Flags, deciding quantity, limit and criterion name per asset.
    """
    n_asset = len(criteria)
    if thermal_columns is None:
        thermal_columns = range(n_asset) if thermal is not None else ()
    position = {int(a): k for k, a in enumerate(thermal_columns)}
    out = CriterionResult(
        need=np.zeros(n_asset, dtype=bool),
        value=np.full(n_asset, np.nan),
        limit=np.full(n_asset, np.nan),
        criterion=np.empty(n_asset, dtype=object),
    )
    groups: dict[ThermalCriterion, list[int]] = {}
    for a, c in enumerate(criteria):
        groups.setdefault(c, []).append(a)
    for c, cols in groups.items():
        sub = None
        if c.kind != "loading" and thermal is not None:
            missing = [a for a in cols if a not in position]
            if missing:
                raise ConfigError(
                    f"criterion {c.kind!r} on assets {missing} without a thermal result",
                    field="thermal_columns",
                )
            sub = _columns(thermal, [position[a] for a in cols])
        res = evaluate_criterion(
            c,
            loading_pct=None if loading_pct is None else np.asarray(loading_pct)[:, cols],
            thermal=sub,
            step_h=step_h,
            asset_limit_pct=None if asset_limit_pct is None else np.asarray(asset_limit_pct)[cols],
            unsolved_over=unsolved_over,
        )
        out.need[cols], out.value[cols] = res.need, res.value
        out.limit[cols], out.criterion[cols] = res.limit, res.criterion
    return out


@dataclass(frozen=True, eq=False)
class ThermalNeeds:
    """Need flags of every asset and the thermal result of those with a thermal model.

    Attributes
    ----------
    criteria
        Flags, deciding quantity, limit and criterion name per asset (all assets).
    thermal
        Thermal result of the assets in ``thermal_columns`` (``None`` when there are none).
    thermal_columns
        Asset position of each column of ``thermal``, shape (n,).
    """

    criteria: CriterionResult
    thermal: ThermalResult | None
    thermal_columns: np.ndarray


def thermal_needs(
    loading_pct: np.ndarray,
    ambient_c: np.ndarray | float,
    step_h: float,
    asset_kind: Sequence[str],
    criteria: Mapping[str, ThermalCriterion],
    *,
    params: Mapping[str, ThermalParameters] | None = None,
    asset_limit_pct: np.ndarray | None = None,
    unsolved_over: bool = False,
    warmup_h: float = 24.0,
    year_weight_h: np.ndarray | None = None,
    keep_series: bool = False,
) -> ThermalNeeds:
    """Thermal model of the transformers and the need of every asset by its kind's criterion.

    The one call a study makes per simulated period: every asset whose kind has thermal
    parameters is modelled (:func:`thermal_response`, whatever its criterion, so its hot
    spot and aging can be reported), and each asset is judged by the criterion of its kind.

    Parameters
    ----------
    loading_pct
        Asset loading [% of nameplate], (time, asset), NaN where not converged.
    ambient_c
        Ambient temperature [°C], (time,) or (time, asset), or a scalar.
    step_h
        Step length [h].
    asset_kind
        Kind of each asset: a kind of the parameter table (``"pole_mount"``,
        ``"pad_mount"``) for a transformer with a thermal model, or any other name (e.g.
        ``"line"``) for an asset judged by loading only.
    criteria
        The criterion of each kind named in ``asset_kind``.
    params
        Thermal parameters by kind; default the bundled table.
    asset_limit_pct, unsolved_over
        As in :func:`evaluate_criterion` (the ``"loading"`` criterion).
    warmup_h, year_weight_h
        As in :func:`thermal_response`.
    keep_series
        Keep the temperature series in ``thermal`` (default: summaries only, which is all
        the criteria need, in bounded memory).

    Raises
    ------
    ConfigError
        A kind without a criterion, or a thermal criterion on a kind without parameters.
    """
    table = load_thermal_parameters() if params is None else params
    kinds = [str(k) for k in asset_kind]
    for k in dict.fromkeys(kinds):
        if k not in criteria:
            raise ConfigError(
                f"no criterion for asset kind {k!r}; criteria given for {sorted(criteria)}",
                field="criteria",
            )
        if criteria[k].kind != "loading" and k not in table:
            raise ConfigError(
                f"criterion {criteria[k].kind!r} for asset kind {k!r} needs thermal "
                f"parameters; kinds with parameters: {sorted(table)}",
                field="criteria",
            )
    loading = np.asarray(loading_pct, dtype=float)
    cols = np.array([a for a, k in enumerate(kinds) if k in table], dtype=int)
    thermal = None
    if cols.size:
        ambient = np.asarray(ambient_c, dtype=float)
        thermal = thermal_response(
            loading[:, cols] / 100.0,
            ambient[:, cols] if ambient.ndim == 2 else ambient,
            step_h,
            [table[kinds[a]] for a in cols],
            warmup_h=warmup_h,
            year_weight_h=year_weight_h,
            keep_series=keep_series,
        )
    result = evaluate_criteria(
        [criteria[k] for k in kinds],
        loading_pct=loading,
        thermal=thermal,
        thermal_columns=cols,
        step_h=step_h,
        asset_limit_pct=asset_limit_pct,
        unsolved_over=unsolved_over,
    )
    return ThermalNeeds(result, thermal, cols)


def _columns(thermal: ThermalResult, cols: list[int]) -> ThermalResult:
    """The thermal result of some assets (last axis)."""
    t = thermal

    def sub(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[..., cols]

    return ThermalResult(
        top_oil_c=sub(t.top_oil_c),
        hot_spot_c=sub(t.hot_spot_c),
        aging_factor=sub(t.aging_factor),
        equivalent_aging=t.equivalent_aging[..., cols],
        loss_of_life_h=t.loss_of_life_h[..., cols],
        loss_of_life_h_per_year=t.loss_of_life_h_per_year[..., cols],
        peak_hot_spot_c=t.peak_hot_spot_c[..., cols],
        peak_top_oil_c=t.peak_top_oil_c[..., cols],
        step_h=t.step_h,
    )


def default_criteria(
    params: Mapping[str, ThermalParameters] | None = None,
) -> dict[str, ThermalCriterion]:
    """The sourced default criterion of each transformer kind: its planning hot-spot limit.

    ``{kind: ThermalCriterion("hot_spot", params.hot_spot_limit_c, source=...)}`` from the
    parameter table (default the bundled one).
    """
    table = load_thermal_parameters() if params is None else params
    return {
        kind: ThermalCriterion(
            "hot_spot",
            p.hot_spot_limit_c,
            source=p.sources.get("hot_spot_limit_c", ""),
        )
        for kind, p in table.items()
    }

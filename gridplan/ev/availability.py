"""Availability of enrolled EVs to a V2G dispatch: opt-outs, overrides, lost
communications and derated export.

Without this model every enrolled EV answers every V2G dispatch at its full export limit.
Demand-response programs report otherwise; :func:`draw_availability` draws, for one fleet
(one trajectory's year), what each enrolled EV can actually export each fleet day:

- **opt-out**: per (day, EV), Bernoulli(``opt_out_probability``): the EV takes no part
  that day (factor 0);
- **lost communications**: per (day, EV), Bernoulli(``comms_failure_probability``)
  (``comms_scope="ev"``), or one draw per day for the whole fleet (``"fleet"``: one
  aggregator): the EV gets no dispatch that day (factor 0);
- **override**: per (day, EV) taking part (neither opted out nor cut off),
  Bernoulli(``override_probability``): the driver stops the export part-way, at a share
  ``u ~ U(0, 1)`` of an event window of ``override_window_h`` hours. Stated rule: the
  day's export is capped at the energy a full-rate export over that share delivers,
  ``u × override_window_h × derate × export_kw`` [kWh, grid side]; once the cap is
  reached the EV leaves the event (it exports no more that session and is no longer
  managed for the V2G strategy);
- **derate**: per EV, drawn once per fleet, the delivered share of the export limit
  (beta distribution of mean ``derate_mean`` and standard deviation ``derate_sd``); it
  multiplies the export limit on every day the EV takes part.

The result (:class:`Availability`) is, per (day, EV), an export factor in [0, 1] (0: opted
out or cut off; else the derate) and an export-energy cap [kWh] (``inf``: none);
:func:`gridplan.ev.dispatch.dispatch` takes it as ``availability=``. A non-available EV
still charges: it behaves that day as an EV not enrolled in V2G under the strategy.

Defaults and their sources: ``gridplan/data/v2g_availability.csv`` (one row per
parameter with value, unit, source and status ``published`` or ``assumption``);
:meth:`AvailabilityParameters.perfect` turns every effect off (the oracle of before), so
that a study can report firmness and deferral with and without them.

Every draw goes through one ``numpy.random.Generator`` in a fixed order, whatever the
parameters (so changing a probability does not shift the other draws): per EV one
uniform for the derate; per (day, EV) one uniform each for opt-out and communications;
per day one uniform for fleet-wide communications; per (day, EV) one uniform each for
override and its share of the window.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, model_validator
from scipy.special import betaincinv

from gridplan.core.config import StrictModel
from gridplan.core.errors import ConfigError
from gridplan.core.io import read_text_table
from gridplan.ev.fleet import Fleet, RNGLike, as_generator

__all__ = [
    "AVAILABILITY_TABLE",
    "Availability",
    "AvailabilityParameters",
    "availability_table",
    "derate_from_uniform",
    "draw_availability",
]

#: The bundled parameter table (``gridplan/data/v2g_availability.csv``).
AVAILABILITY_TABLE = "v2g_availability.csv"
_TABLE_COLUMNS = ("parameter", "value", "unit", "source", "status")
_STATUSES = ("published", "assumption")
_Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _table_path() -> Path:
    return Path(str(resources.files("gridplan").joinpath("data", AVAILABILITY_TABLE)))


def availability_table(path: str | Path | None = None) -> pd.DataFrame:
    """The availability parameter table, indexed by ``parameter``: ``value`` (text),
    ``unit``, ``source`` and ``status`` (``published`` or ``assumption``).

    Parameters
    ----------
    path
        The table; default the bundled ``gridplan/data/v2g_availability.csv``.

    Raises
    ------
    ConfigError
        Unreadable file, a missing column, a duplicate or unknown parameter, an empty
        source or an unknown status.
    """
    file = Path(path) if path is not None else _table_path()
    table = read_text_table(file, _TABLE_COLUMNS, "the availability table")
    table = table.apply(lambda col: col.str.strip())
    known = set(AvailabilityParameters.model_fields)
    for pos, row in enumerate(table.itertuples(index=False), start=2):
        if row.parameter not in known:
            raise ConfigError(
                f"row {pos}: unknown parameter {row.parameter!r} (expected one of "
                f"{', '.join(sorted(known))})",
                file=file,
                field="parameter",
            )
        if not row.source:
            raise ConfigError(f"row {pos}: every row needs a source", file=file, field="source")
        if row.status not in _STATUSES:
            raise ConfigError(
                f"row {pos}: status {row.status!r} (expected {' or '.join(_STATUSES)})",
                file=file,
                field="status",
            )
    if table.parameter.duplicated().any():
        name = table.parameter[table.parameter.duplicated()].iloc[0]
        raise ConfigError(f"duplicate parameter {name!r}", file=file, field="parameter")
    return table.set_index("parameter")


def _typed(name: str, text: str) -> Any:
    """The table's text value of parameter ``name`` as its field's type."""
    return text if name == "comms_scope" else float(text)


@functools.cache
def _defaults() -> dict[str, Any]:
    """The bundled table's values, typed (read once per process)."""
    table = availability_table()
    return {name: _typed(name, str(table.at[name, "value"])) for name in table.index}


class AvailabilityParameters(StrictModel):
    """Probabilities and derate of the availability model (see the module docstring).

    Every field left out takes its value from the bundled table
    ``gridplan/data/v2g_availability.csv`` (:meth:`published`), which names its source.

    Attributes
    ----------
    opt_out_probability
        Probability that an enrolled EV opts out of a day's events [-], per (day, EV).
    override_probability
        Probability that an EV taking part stops exporting part-way [-], per (day, EV).
    override_window_h
        Event window whose drawn share an override keeps [h] (the export cap's time).
    comms_failure_probability
        Probability that the dispatch does not reach the EV on a day [-].
    comms_scope
        ``"ev"``: communication failures per (day, EV); ``"fleet"``: per day for the
        whole fleet (one aggregator).
    derate_mean, derate_sd
        Mean and standard deviation of each EV's delivered share of its export limit
        [-] (beta distribution; ``derate_sd = 0``: every EV at the mean).

    Raises
    ------
    pydantic.ValidationError
        A probability or mean outside [0, 1], a window outside (0, 24] h, an unknown
        scope, or a spread no distribution on [0, 1] with that mean has
        (``derate_sd² < mean × (1 − mean)`` unless ``derate_sd`` is 0).
    """

    model_config = ConfigDict(**StrictModel.model_config, validate_default=True)

    opt_out_probability: _Share = Field(default_factory=lambda: _defaults()["opt_out_probability"])
    override_probability: _Share = Field(
        default_factory=lambda: _defaults()["override_probability"]
    )
    override_window_h: Annotated[float, Field(gt=0, le=24, allow_inf_nan=False)] = Field(
        default_factory=lambda: _defaults()["override_window_h"]
    )
    comms_failure_probability: _Share = Field(
        default_factory=lambda: _defaults()["comms_failure_probability"]
    )
    comms_scope: Literal["ev", "fleet"] = Field(default_factory=lambda: _defaults()["comms_scope"])
    derate_mean: _Share = Field(default_factory=lambda: _defaults()["derate_mean"])
    derate_sd: Annotated[float, Field(ge=0, le=0.5, allow_inf_nan=False)] = Field(
        default_factory=lambda: _defaults()["derate_sd"]
    )

    @model_validator(mode="after")
    def _check_spread(self) -> AvailabilityParameters:
        m, s = self.derate_mean, self.derate_sd
        if s > 0 and not s * s < m * (1.0 - m):
            raise ValueError(
                f"derate_sd {s:g} is too wide for derate_mean {m:g} (a distribution on "
                f"[0, 1] needs derate_sd² < mean × (1 − mean) = {m * (1 - m):g}); use a "
                "smaller spread, or 0"
            )
        return self

    @classmethod
    def published(cls) -> AvailabilityParameters:
        """The defaults of the bundled table (each with its source there)."""
        return cls()

    @classmethod
    def perfect(cls) -> AvailabilityParameters:
        """Every effect off: each enrolled EV answers every dispatch at its full export
        limit (the model's results equal ``availability=None``)."""
        return cls(
            opt_out_probability=0.0,
            override_probability=0.0,
            comms_failure_probability=0.0,
            derate_mean=1.0,
            derate_sd=0.0,
        )

    @classmethod
    def preset(cls, name: str) -> AvailabilityParameters:
        """``"published"`` (:meth:`published`) or ``"perfect"`` (:meth:`perfect`)."""
        if name == "published":
            return cls.published()
        if name == "perfect":
            return cls.perfect()
        raise ConfigError(
            f"unknown availability preset {name!r} (expected published or perfect)",
            field="availability.preset",
        )

    @property
    def is_perfect(self) -> bool:
        """Whether every effect is off."""
        return (
            self.opt_out_probability == 0
            and self.override_probability == 0
            and self.comms_failure_probability == 0
            and self.derate_mean == 1
            and self.derate_sd == 0
        )


@dataclass(frozen=True, eq=False)
class Availability:
    """What each EV can export on each fleet day, drawn by :func:`draw_availability`.

    Attributes
    ----------
    export_factor
        Share of the export limit available [-], (day, EV), in [0, 1]: 0 when opted out
        or cut off, else the EV's derate.
    export_cap_kwh
        Most energy the EV exports in that day's session [kWh, grid side], (day, EV);
        ``inf``: no cap (no override).
    derate
        Delivered share of each EV's export limit [-], (EV,).
    opted_out, comms_lost, overridden
        Which effect struck each (day, EV), bool (day, EV); ``overridden`` only where the
        EV took part.
    override_share
        Share of the window after which the EV overrides [-], (day, EV); NaN where it
        does not.
    """

    export_factor: np.ndarray
    export_cap_kwh: np.ndarray
    derate: np.ndarray
    opted_out: np.ndarray
    comms_lost: np.ndarray
    overridden: np.ndarray
    override_share: np.ndarray

    @classmethod
    def perfect(cls, fleet: Fleet) -> Availability:
        """Every EV available every day at its full export limit, without cap."""
        shape = np.shape(fleet.arrival_h)
        none = np.zeros(shape, dtype=bool)
        return cls(
            export_factor=np.ones(shape),
            export_cap_kwh=np.full(shape, np.inf),
            derate=np.ones(shape[1]),
            opted_out=none,
            comms_lost=none,
            overridden=none,
            override_share=np.full(shape, np.nan),
        )

    def take(self, keep: np.ndarray) -> Availability:
        """The availability of the EVs where ``keep`` (bool, shape (EV,)) is True, in order
        (matches :meth:`Fleet.take <gridplan.ev.fleet.Fleet.take>`)."""
        keep = np.asarray(keep, dtype=bool)
        return Availability(
            **{
                f.name: (value[:, keep] if value.ndim == 2 else value[keep])
                for f in dataclasses.fields(self)
                for value in [np.asarray(getattr(self, f.name))]
            }
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(day, EV)."""
        n_day, n_ev = np.shape(self.export_factor)
        return int(n_day), int(n_ev)

    def summary(self, enrolled: np.ndarray | None = None) -> dict[str, float]:
        """Shares over the (day, EV) of ``enrolled`` EVs (default all) [-]:
        ``opted_out``, ``comms_lost``, ``overridden`` (among those taking part),
        ``unavailable`` (factor 0) and the mean ``derate`` and ``export_factor``."""
        cols = np.ones(self.shape[1], bool) if enrolled is None else np.asarray(enrolled, bool)

        def share(mask: np.ndarray, among: np.ndarray | None = None) -> float:
            m = mask[:, cols]
            base = np.ones_like(m) if among is None else among[:, cols]
            n = int(base.sum())
            return float((m & base).sum() / n) if n else float("nan")

        taking_part = ~(self.opted_out | self.comms_lost)
        factor = self.export_factor[:, cols]
        return {
            "opted_out": share(self.opted_out),
            "comms_lost": share(self.comms_lost),
            "overridden": share(self.overridden, taking_part),
            "unavailable": share(self.export_factor <= 0),
            "derate": float(self.derate[cols].mean()) if cols.any() else float("nan"),
            "export_factor": float(factor.mean()) if factor.size else float("nan"),
        }

    def check(self, fleet: Fleet) -> None:
        """Raise :class:`ConfigError` unless this availability fits ``fleet``'s (day, EV)
        and its factors are in [0, 1] and its caps >= 0."""
        shape = tuple(np.shape(fleet.arrival_h))
        if tuple(np.shape(self.export_factor)) != shape or (
            tuple(np.shape(self.export_cap_kwh)) != shape
        ):
            raise ConfigError(
                f"availability has shape {np.shape(self.export_factor)}, the fleet's (day, EV) "
                f"is {shape} (expected an availability drawn for this fleet)",
                field="availability",
            )
        factor = np.asarray(self.export_factor, dtype=float)
        if not (np.isfinite(factor).all() and (factor >= 0).all() and (factor <= 1).all()):
            raise ConfigError("export_factor must be in [0, 1]", field="availability.export_factor")
        cap = np.asarray(self.export_cap_kwh, dtype=float)
        if np.isnan(cap).any() or (cap < 0).any():
            raise ConfigError(
                "export_cap_kwh must be >= 0 (inf: none)", field="availability.export_cap_kwh"
            )


def derate_from_uniform(u: np.ndarray, params: AvailabilityParameters) -> np.ndarray:
    """Each EV's derate [-] from a uniform number in [0, 1) (inverse beta CDF of mean
    ``derate_mean`` and standard deviation ``derate_sd``; the mean when the spread is 0).

    Drawing the uniforms once per trajectory and mapping them with this function keeps an
    EV's derate along the trajectory.
    """
    u = np.asarray(u, dtype=float)
    m, s = params.derate_mean, params.derate_sd
    if s == 0 or m in (0.0, 1.0):
        return np.full(u.shape, m)
    k = m * (1.0 - m) / (s * s) - 1.0  # a + b of the beta distribution
    return np.asarray(betaincinv(m * k, (1.0 - m) * k, u), dtype=float)


def draw_availability(
    fleet: Fleet,
    params: AvailabilityParameters | None = None,
    rng: RNGLike = None,
    *,
    derate: np.ndarray | None = None,
) -> Availability:
    """Draw what each EV of ``fleet`` can export on each of its days.

    Parameters
    ----------
    fleet
        The fleet (its (day, EV) shape and export limits).
    params
        The model; default :meth:`AvailabilityParameters.published`.
    rng
        Generator or seed; every draw goes through it (order: module docstring).
    derate
        Each EV's derate [-], (EV,), in [0, 1], when drawn elsewhere (for instance once
        per trajectory with :func:`derate_from_uniform`); the uniform of this draw is
        still consumed.

    Returns
    -------
    Availability

    Raises
    ------
    ConfigError
        A ``derate`` of the wrong shape or outside [0, 1].
    """
    params = params if params is not None else AvailabilityParameters.published()
    gen = as_generator(rng)
    n_day, n_ev = np.shape(fleet.arrival_h)
    shape = (n_day, n_ev)
    u_derate = np.asarray(gen.random(n_ev))
    u_opt_out = np.asarray(gen.random(shape))
    u_comms = np.asarray(gen.random(shape))
    u_comms_day = np.asarray(gen.random(n_day))
    u_override = np.asarray(gen.random(shape))
    u_share = np.asarray(gen.random(shape))
    if derate is None:
        factor_ev = derate_from_uniform(u_derate, params)
    else:
        factor_ev = np.asarray(derate, dtype=float)
        if factor_ev.shape != (n_ev,) or not (
            np.isfinite(factor_ev).all() and (factor_ev >= 0).all() and (factor_ev <= 1).all()
        ):
            raise ConfigError(
                f"derate must be {n_ev} numbers in [0, 1] (got shape {factor_ev.shape})",
                field="derate",
            )
    opted_out = u_opt_out < params.opt_out_probability
    if params.comms_scope == "fleet":
        comms_lost = np.repeat((u_comms_day < params.comms_failure_probability)[:, None], n_ev, 1)
    else:
        comms_lost = u_comms < params.comms_failure_probability
    taking_part = ~(opted_out | comms_lost)
    overridden = taking_part & (u_override < params.override_probability)
    export_kw = np.asarray(fleet.export_kw, dtype=float)
    full_kwh = params.override_window_h * factor_ev * export_kw  # a full window's export
    return Availability(
        export_factor=np.where(taking_part, factor_ev[None, :], 0.0),
        export_cap_kwh=np.where(overridden, u_share * full_kwh[None, :], np.inf),
        derate=factor_ev,
        opted_out=opted_out,
        comms_lost=comms_lost,
        overridden=overridden,
        override_share=np.where(overridden, u_share, np.nan),
    )

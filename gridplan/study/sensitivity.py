"""The study's sensitivity tornado: the headline value at each parameter's low and high."""

from __future__ import annotations

import pandas as pd

from gridplan.grid.feeders import Feeder
from gridplan.planning.sensitivity import tornado
from gridplan.study.config import LoadGrowthSpec, SensitivitySpec, StudyConfig
from gridplan.study.horizon import HorizonResult
from gridplan.study.simulate import build_context, simulate_horizon
from gridplan.study.tables import asset_table, economics_table, headline_value

__all__ = ["sensitivity_table"]


def _variant(
    config: StudyConfig, draws: int, growth: float, adoption: float, enrollment: float, rate: float
) -> StudyConfig:
    """The study with load growth, EV adoption and enrollment scaled, ``draws`` draws."""
    fleet = config.fleet
    fleet = fleet.model_copy(
        update={
            "adoption": fleet.adoption_spec().scaled(adoption),
            "evs_per_household": None,
            "v2g_enrolled_share": min(1.0, fleet.v2g_enrolled_share * enrollment),
        }
    )
    growth_spec = config.load_growth
    if growth_spec.factors:
        factors = {k: 1.0 + (v - 1.0) * growth for k, v in growth_spec.factors.items()}
        growth_spec = LoadGrowthSpec(factors=factors)
    else:
        growth_spec = LoadGrowthSpec(rate=rate * growth)
    return config.model_copy(
        update={
            "horizon": config.horizon.model_copy(update={"draws": draws}),
            "sensitivity": SensitivitySpec(),
            "fleet": fleet,
            "load_growth": growth_spec,
        }
    )


def sensitivity_table(
    config: StudyConfig, feeder: Feeder, h: HorizonResult, time_index: pd.DatetimeIndex
) -> pd.DataFrame:
    """One-at-a-time tornado over discount rate, escalation, upgrade cost (re-valued) and
    load growth, EV adoption, enrollment (re-run with ``sensitivity.draws`` draws).

    The metric is :func:`gridplan.study.tables.headline_value`: the ratepayer net benefit of
    the primary V2G case with a ``[program]``, else its gross deferral value [USD].
    """
    spec = config.sensitivity
    draws = spec.draws or config.horizon.draws
    growth_rate = (
        config.load_growth.rate if config.load_growth.rate is not None else feeder.growth_rate
    )
    base = {
        "discount_rate": config.valuation.discount_rate,
        "escalation_rate": config.valuation.escalation_rate,
        "upgrade_cost": 1.0,
        "load_growth": 1.0,
        "ev_adoption": 1.0,
        "enrollment": 1.0,
    }
    ranges = {name: tuple(getattr(spec, name)) for name in base}
    cache: dict[tuple[float, float, float], HorizonResult] = {}

    def horizon_for(growth: float, adoption: float, enrollment: float) -> HorizonResult:
        key = (growth, adoption, enrollment)
        if key == (1.0, 1.0, 1.0) and draws == config.horizon.draws:
            return h
        if key not in cache:
            variant = _variant(config, draws, growth, adoption, enrollment, growth_rate)
            cache[key] = simulate_horizon(build_context(variant, feeder))
        return cache[key]

    def evaluate(
        discount_rate: float,
        escalation_rate: float,
        upgrade_cost: float,
        load_growth: float,
        ev_adoption: float,
        enrollment: float,
    ) -> float:
        horizon = horizon_for(load_growth, ev_adoption, enrollment)
        valuation = config.valuation.model_copy(
            update={"discount_rate": discount_rate, "escalation_rate": escalation_rate}
        )
        variant = config.model_copy(update={"valuation": valuation})
        table = asset_table(feeder, variant, horizon, cost_factor=upgrade_cost)
        econ = economics_table(variant, horizon, table, time_index, feeder.step_h)
        return headline_value(econ)

    return tornado(evaluate, base, ranges)

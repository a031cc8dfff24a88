"""The small study the figure, map, GIS and report tests share: ca-residential, one day of
September (the summer peak), 2028-2032, 2 draws, a program with an energy price."""

from __future__ import annotations

from typing import Any


def viz_study(name: str, **extra: Any) -> dict[str, Any]:
    """The shared small study named ``name``, with ``extra`` top-level fields added."""
    return {
        "name": name,
        "feeder": "ca-residential",
        "year": 2030,
        "base_year": 2026,
        "seed": 7,
        "period": {"kind": "range", "start": "2017-09-03", "end": "2017-09-04"},
        "horizon": {"start": 2028, "end": 2032, "draws": 2, "confidence": 0.5},
        "fleet": {"evs_per_household": 0.6, "v2g_capable_share": 0.6, "v2g_enrolled_share": 0.6},
        "program": {
            "charging_energy_price_usd_per_kwh": 0.3,
            "charging_energy_price_source": "test tariff",
        },
        **extra,
    }

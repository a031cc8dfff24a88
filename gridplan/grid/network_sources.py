"""Network functions a feeder spec may name, and the plain options they may receive.

A feeder spec's ``[network]`` table names the function that builds its net. gridplan never
looks a name up freely in a third-party module: ``pandapower.networks`` also exports
``from_json`` and ``sorted_from_json``, which decode any JSON text or file they are given
(type tags in it import modules and call constructors), and several of its builders pass
``**kwargs`` on to ``from_json``. Only the functions in :data:`PANDAPOWER_NETWORKS` are
called: each builds its net from pandapower's own data, with the keyword options listed
beside it. Every option is a plain scalar checked against its :class:`Option` (a boolean, a
bounded integer or number, one of a fixed set of values, or a standard-type name), so no
option can carry a file name or JSON text. A JSON net is loaded through
:mod:`gridplan.grid.safe_json` only (``network.source = "json"``), and SimBench nets by
their code, checked against ``simbench.collect_all_simbench_codes()``.

The allow-list was written against pandapower 3.5 (function names and signatures there).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "PANDAPOWER_NETWORKS",
    "Option",
    "OptionError",
    "check_options",
    "choice",
    "count",
    "flag",
    "number",
    "pandapower_network_function",
    "simbench_codes",
    "std_type_name",
    "unknown_function_message",
]

#: Functions whose names are refused with a pointer to the checked JSON loader.
_JSON_DECODERS = frozenset({"from_json", "sorted_from_json", "from_json_string", "from_json_dict"})

# A standard-type name as pandapower and its example networks spell them ("NAYY 4x150 SE",
# "0.4 MVA 10/0.4 kV", "NA2XS2Y 1x95 RM/25 12/20 kV", "N2XS(FL)2Y 1x120 RM/35 64/110 kV"):
# letters, digits, spaces and . , + ( ) _ -, and "/" only before a digit. No quotes, braces,
# backslashes, leading dots or slashes, and no file suffix ("x.json"): never a path or JSON.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 .,+()_-]|/(?=[0-9])){0,63}")
_FILE_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")


class OptionError(ValueError):
    """An option a network function does not take, or a value of the wrong kind.

    Attributes
    ----------
    option
        The offending option name (``None`` when the options as a whole are wrong).
    reason
        What is wrong and what was expected (one line).
    """

    def __init__(self, option: str | None, reason: str) -> None:
        super().__init__(reason)
        self.option = option
        self.reason = reason


@dataclass(frozen=True)
class Option:
    """What one keyword option of a network function accepts.

    Attributes
    ----------
    kind
        ``"bool"`` (true/false), ``"int"`` (an integer, not a boolean), ``"float"`` (a finite
        number, not a boolean), ``"choice"`` (one of :attr:`choices`, same type) or ``"name"``
        (a standard-type name: up to 64 letters, digits, spaces and ``. , + ( ) _ -``, with
        ``/`` only between two digits).
    low, high
        Bounds of ``int``/``float`` values (``None``: unbounded) [unit].
    low_open
        ``True`` when ``low`` itself is excluded (e.g. lengths > 0).
    choices
        The allowed values of a ``choice``.
    unit
        Unit of the value, shown in messages (e.g. ``"km"``).
    """

    kind: Literal["bool", "int", "float", "choice", "name"]
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[object, ...] = ()
    unit: str = ""

    def describe(self) -> str:
        """What a value must be, for messages (e.g. ``"a number > 0 and <= 10 [km]"``)."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(_toml(c) for c in self.choices)
        if self.kind == "name":
            return (
                'a standard-type name such as "NAYY 4x150" (letters, digits, spaces and '
                ".,+()_-, with '/' only before a digit; no file suffix)"
            )
        text = "an integer" if self.kind == "int" else "a finite number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {_number(self.low)}")
        if self.high is not None:
            bounds.append(f"<= {_number(self.high)}")
        if bounds:
            text += " " + " and ".join(bounds)
        return f"{text} [{self.unit}]" if self.unit else text

    def accepts(self, value: object) -> bool:
        """``True`` if ``value`` (as read from TOML) is a valid value of this option."""
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return any(type(value) is type(c) and value == c for c in self.choices)
        if self.kind == "name":
            return (
                isinstance(value, str)
                and _NAME.fullmatch(value) is not None
                and _FILE_SUFFIX.search(value) is None
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


def flag() -> Option:
    """A boolean option."""
    return Option("bool")


def count(low: int = 0, high: int | None = None) -> Option:
    """An integer option in ``[low, high]``."""
    return Option("int", low=low, high=high)


def number(
    low: float | None = None, high: float | None = None, unit: str = "", *, low_open: bool = False
) -> Option:
    """A finite-number option in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    return Option("float", low=low, high=high, low_open=low_open, unit=unit)


def choice(*values: object) -> Option:
    """An option that takes one of ``values`` (compared with their type)."""
    return Option("choice", choices=values)


def std_type_name() -> Option:
    """A standard-type name option (e.g. ``"NAYY 4x150"``, ``"0.4 MVA 10/0.4 kV"``)."""
    return Option("name")


def _number(value: float) -> str:
    """A bound for messages: ``1000000`` and ``0.5`` as written, not ``1e+06``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _toml(value: object) -> str:
    """A value as it is written in TOML (for messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _shown(value: object, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters (lone surrogates escaped)."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_options(options: object, allowed: Mapping[str, Option], owner: str) -> None:
    """Check the options given to a network function against its allow-list.

    Parameters
    ----------
    options
        The ``network.options`` table as read from TOML.
    allowed
        The options ``owner`` takes, each with what it accepts.
    owner
        The function, named in messages (e.g. ``"pandapower.networks.mv_oberrhein"``).

    Raises
    ------
    OptionError
        ``options`` is not a table, names an option ``owner`` does not take (with a
        close-match hint and the allowed names), or gives a value of the wrong kind.
    """
    if not isinstance(options, Mapping):
        raise OptionError(None, f"options must be a table, got {_shown(options)}")
    for key, value in options.items():
        option = allowed.get(key) if isinstance(key, str) else None
        if option is None:
            known = sorted(allowed)
            close = difflib.get_close_matches(str(key), known, n=1) if known else []
            hint = f"did you mean '{close[0]}'? " if close else ""
            takes = f"it takes: {', '.join(known)}" if known else "it takes no options"
            raise OptionError(str(key), f"{owner} has no option {_shown(key)} ({hint}{takes})")
        if not option.accepts(value):
            raise OptionError(
                key, f"option '{key}' of {owner} must be {option.describe()}, got {_shown(value)}"
            )


# ---------------------------------------------------------------------------------------------
# pandapower.networks: builders of nets from pandapower's own data

_LENGTH_KM = number(0, 100, "km", low_open=True)
_LOAD_MW = number(0, 100, "MW")
_LOAD_MVAR = number(-100, 100, "Mvar")
_VOLTAGE_KV = number(0, 1000, "kV", low_open=True)
_BRANCHES = count(0, 1000)
_COSPHI = number(0, 1, low_open=True)
_REF_BUS = count(0, 1_000_000)

# Options of the overhead Kerber networks (pandapower.networks.kerber_networks and
# kerber_extreme_networks). The cable, village and suburban Kerber networks are left out:
# they draw their branch-out cable types from Python's global ``random`` state, so they give
# a different net on every call (gridplan's randomness is explicit and seeded).
_KERBER: dict[str, Option] = {
    "std_type": std_type_name(),
    "trafotype": std_type_name(),
    "p_load_mw": _LOAD_MW,
    "q_load_mvar": _LOAD_MVAR,
    "v_os": _VOLTAGE_KV,
    "n_lines": _BRANCHES,
    "n_branch_1": _BRANCHES,
    "n_branch_2": _BRANCHES,
    "l_lines_in_km": _LENGTH_KM,
    "l_lines_1_in_km": _LENGTH_KM,
    "l_lines_2_in_km": _LENGTH_KM,
}
_RURAL_OVERHEAD_1 = {
    key: _KERBER[key]
    for key in (
        "n_lines",
        "l_lines_in_km",
        "std_type",
        "trafotype",
        "p_load_mw",
        "q_load_mvar",
        "v_os",
    )
}
_RURAL_OVERHEAD_2 = {
    key: _KERBER[key]
    for key in (
        "n_branch_1",
        "n_branch_2",
        "l_lines_1_in_km",
        "l_lines_2_in_km",
        "std_type",
        "trafotype",
        "p_load_mw",
        "q_load_mvar",
        "v_os",
    )
}
_NO_OPTIONS: dict[str, Option] = {}

#: Every function of ``pandapower.networks`` a feeder spec may name, with the keyword options
#: it may be given. Left out on purpose: ``from_json``/``sorted_from_json`` (they decode
#: arbitrary JSON), helpers that need an existing net (``create_dickert_lv_feeders``), the
#: Kerber networks that draw from Python's global ``random`` (a different net on each call),
#: options that are not plain values (``trafo_type_data``) or return several nets
#: (``separation_by_sub``), and every ``**kwargs`` (passed on to ``from_json``).
PANDAPOWER_NETWORKS: dict[str, Mapping[str, Option]] = {
    # simple test networks and examples
    "example_simple": _NO_OPTIONS,
    "example_multivoltage": _NO_OPTIONS,
    "simple_four_bus_system": _NO_OPTIONS,
    "simple_mv_open_ring_net": _NO_OPTIONS,
    "panda_four_load_branch": _NO_OPTIONS,
    "four_loads_with_branches_out": _NO_OPTIONS,
    # CIGRE benchmark networks
    "create_cigre_network_hv": {"length_km_6a_6b": _LENGTH_KM},
    "create_cigre_network_mv": {"with_der": choice(False, "pv_wind", "all")},
    "create_cigre_network_lv": _NO_OPTIONS,
    # distribution networks from pandapower's data files
    "mv_oberrhein": {
        "scenario": choice("load", "generation"),
        "cosphi_load": _COSPHI,
        "cosphi_pv": _COSPHI,
        "include_substations": flag(),
    },
    "lv_schutterwald": {"include_heat_pumps": flag()},
    "ieee_european_lv_asymmetric": {
        "scenario": choice("on_peak_566", "off_peak_1", "off_peak_1440")
    },
    # synthetic LV networks
    "create_dickert_lv_network": {
        "feeders_range": choice("short", "middle", "long"),
        "linetype": choice("cable", "C&OHL"),
        "customer": choice("single", "multiple"),
        "case": choice("good", "average", "bad"),
        "trafo_type_name": std_type_name(),
    },
    "create_synthetic_voltage_control_lv_network": {
        "network_class": choice("rural_1", "rural_2", "village_1", "village_2", "suburb_1")
    },
    "create_kerber_landnetz_freileitung_1": _RURAL_OVERHEAD_1,
    "create_kerber_landnetz_freileitung_2": _RURAL_OVERHEAD_2,
    "kb_extrem_landnetz_freileitung": _RURAL_OVERHEAD_1,
    "kb_extrem_landnetz_freileitung_trafo": _RURAL_OVERHEAD_2,
    # transmission test cases (MATPOWER and others, from pandapower's data files)
    **{
        case: _NO_OPTIONS
        for case in (
            "case4gs case5 case6ww case9 case11_iwamoto case14 case24_ieee_rts case30 "
            "case_ieee30 case33bw case39 case89pegase case118 case145 case_illinois200 case300 "
            "case1354pegase case2869pegase case3120sp case9241pegase GBnetwork "
            "GBreducednetwork iceland"
        ).split()
    },
    "case57": {f"vn_kv_area{i}": _VOLTAGE_KV for i in range(1, 7)},
    **{
        case: {"ref_bus_idx": _REF_BUS}
        for case in ("case1888rte", "case2848rte", "case6470rte", "case6495rte", "case6515rte")
    },
}


def unknown_function_message(function: object) -> str:
    """Why ``network.function`` is refused, with a close-match hint and the allowed names."""
    text = str(function)
    if text in _JSON_DECODERS:
        lead = (
            f"pandapower.networks.{text} decodes JSON without gridplan's checks and is never "
            'called; load a JSON net with network.source = "json" and network.path'
        )
    else:
        close = difflib.get_close_matches(text, list(PANDAPOWER_NETWORKS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        lead = f"{_shown(function)} is not an allowed pandapower.networks function{hint}"
    return f"{lead} (allowed: {', '.join(PANDAPOWER_NETWORKS)})"


def pandapower_network_function(function: str) -> Callable[..., Any]:
    """The allow-listed ``pandapower.networks`` function named ``function``.

    Raises
    ------
    OptionError
        ``function`` is not in :data:`PANDAPOWER_NETWORKS`, or the installed pandapower
        has no such builder in ``pandapower.networks``.
    """
    if not isinstance(function, str) or function not in PANDAPOWER_NETWORKS:
        raise OptionError(None, unknown_function_message(function))
    import pandapower.networks as pn

    fn = getattr(pn, function, None)
    module = getattr(fn, "__module__", None) or ""
    if not callable(fn) or not module.startswith("pandapower.networks."):
        raise OptionError(
            None, f"the installed pandapower has no network builder pandapower.networks.{function}"
        )
    return fn


@lru_cache(maxsize=1)
def simbench_codes() -> frozenset[str]:
    """The SimBench codes a feeder spec may name: ``simbench.collect_all_simbench_codes()``."""
    import simbench as sb

    return frozenset(sb.collect_all_simbench_codes())

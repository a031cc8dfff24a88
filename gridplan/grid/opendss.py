r"""Import OpenDSS feeder models into a balanced pandapower net (issue 17).

This is the only gridplan module that imports :mod:`opendssdirect` (DSS-Extensions'
OpenDSS engine, BSD-3-Clause). A circuit is read in three stages:

1. **Safety scan** (:func:`scan_script`). OpenDSS scripts are code: they can write files
   (``Export``, ``Save``, ``Show``, ``Plot``), run programs (``System``, ``DOScmd``) and read
   any path (``Redirect``, ``Compile``, ``file=`` in a property). Before anything is given to
   the engine, the master and every file it redirects to are scanned line by line. Allowed:
   circuit definition (``New``, ``Edit``, ``More``/``~``, ``BatchEdit``, the
   ``Class.name.property=value`` form, ``Clear``, ``Calcvoltagebases``, ``SetkVBase``,
   ``Open``/``Close``/``Enable``/``Disable``), ``Set`` of the options in
   :data:`SAFE_SET_OPTIONS`, and ``Redirect``/``Compile``/``BusCoords`` and ``file=``
   references of files inside the feeder's folder. Anything else raises a one-line
   :class:`~gridplan.core.errors.ConfigError` naming the file, line and command.
2. **Compile** (:func:`compile_circuit`). The scanned files are copied into a temporary
   folder, the engine runs with forms, editor, DOS commands and directory changes disabled
   and its ``DataPath`` in that folder, and the copy of the master is compiled and solved
   (snapshot). Nothing is read or written outside the temporary folder.
3. **Conversion** (:func:`convert`), reading the compiled elements through the engine's
   API (no ``.dss`` text is parsed for element data). A balanced (positive-sequence)
   pandapower net is built with these rules:

   - **Buses**: one pandapower bus per OpenDSS bus, ``vn_kv`` = the bus's line-to-neutral
     base kV (from ``Calcvoltagebases``) x sqrt(3). Bus coordinates are kept, as given, in
     :attr:`Conversion.bus_xy` and the feeder's ``bus_xy`` (unprojected schematic
     coordinates: no CRS is known, so they are not put into ``net.bus.geo``, which gridplan
     reads as EPSG:4326); maps draw them as a schematic, a bus without coordinates at the
     nearest bus that has them.
   - **Source**: the ``Vsource`` becomes an ``ext_grid`` at its ``pu`` on an extra bus,
     with its positive-sequence impedance ``R1 + jX1`` [ohm] as a 1 km line named
     ``Vsource.<name>`` (gridplan's solver models no pandapower ``impedance`` elements).
   - **Lines** of n phases (n = 1, 2, 3): positive-sequence series impedance
     Z_ps = Z_s - Z_m for n = 3 (mean diagonal minus mean off-diagonal of the phase
     impedance matrix), Z_ps = Z_s for n = 1, 2 (mutual coupling of a two-phase lateral is
     neglected); the same for the capacitance matrix. Equivalence rule for the balanced
     net (same kVA, same % loading, same per-unit voltage drop): an n-phase line becomes a
     three-phase line with Z = (3/n) Z_ps, C = (n/3) C_ps and rating
     ``max_i_ka`` = (n/3) ``normamps``. Lines flagged ``switch=y`` are converted the same
     way (they are short links). Lines with an open terminal become out-of-service lines;
     lines disabled in the model (``enabled=false``, open points) are not converted and
     are counted in the report; buses left without a path to the source are put out of
     service. Series impedances below :data:`MIN_IMPEDANCE_PU` (busbar links) are raised
     to it.
   - **Series reactors** (``Reactor`` with two buses) become 1 km lines of their R + jX
     named ``Reactor.<name>``, rated at their ``normamps``; shunt reactors are listed as
     not converted.
   - **Transformers** (two windings): ``sn_mva`` = rated kVA (all phases),
     ``vk_percent`` = \|%R + jXhl\|, ``vkr_percent`` = %R (both windings), ``pfe_kw`` =
     %noloadloss x kVA, ``i0_percent`` = \|%noloadloss + j %imag\| (so the magnetising
     kvar is %imag). A single-phase transformer (service transformer, 7.2 kV / 240 V or
     120/240 V center-tapped) becomes a three-phase transformer of the same kVA whose
     winding voltages are its line-to-neutral ratings x sqrt(3) (a delta winding keeps its
     kV): it carries the same kVA at the same % loading and the same per-unit impedance.
     Limit of the rule: one-phase transformers on different phases that feed the same
     secondary bus name become parallel transformers sharing the load equally. The present
     tap of each winding is folded into its rated voltage (``vn_kv`` x tap) and kept fixed;
     regulators (``RegControl``) are therefore at their present tap and reported as
     fixed. Transformers with three windings are listed as not converted.
   - **Capacitors** become shunts with ``q_mvar`` = -(kvar of the closed steps) at their
     rated kV (line-to-line; x sqrt(3) for a one-phase unit); ``CapControl`` is reported
     and the present step state is kept.
   - **Loads**: ``kW``/``kvar`` at their bus (constant power); their class is taken from
     a mapping of loadshape names when given, else ``primary`` for a load on a bus of
     1 kV or more (feeder equivalents, primary-metered customers), ``commercial`` when the
     yearly loadshape name starts with ``commercial`` or the load's ``Class`` is > 1, else
     ``residential``; the customer count is ``NumCust`` (``net.load.customers``; the
     household rule ``customers`` uses it). The class is also written to
     ``net.load.profile``.
   - **PV systems and generators** become ``sgen`` at their rated kW / kvar; their profiles
     follow their yearly loadshapes (:func:`generation_profiles`), and one without a yearly
     shape produces nothing (reported).
   - **Anything else** (controls, storage, meters, monitors, three-winding transformers,
     shunt reactors, ...) is listed in :attr:`Conversion.report`; nothing is dropped
     silently.

:func:`validate` solves OpenDSS's own snapshot and ``pandapower.runpp`` on the converted
net at the same loads (each load's power as OpenDSS solved it) and compares feeder-head P
and Q, service-transformer loading (% of kVA rating, apparent power at the primary
terminal) and primary voltages.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd

from gridplan.core.errors import ConfigError

__all__ = [
    "CONVERTED_CLASSES",
    "FILE_PROPERTIES",
    "HEAD_TOLERANCE",
    "LOADING_SHARE",
    "LOADING_TOLERANCE_PCT",
    "MIN_IMPEDANCE_PU",
    "PROFILE_YEAR",
    "SAFE_CLASSES",
    "SAFE_COMMANDS",
    "SAFE_SET_OPTIONS",
    "VOLTAGE_TOLERANCE_PU",
    "Comparison",
    "Conversion",
    "compile_circuit",
    "convert",
    "convert_compiled",
    "generation_profiles",
    "scan_script",
    "validate",
    "yearly_profiles",
]

log = logging.getLogger(__name__)

#: Commands that only define the circuit (lower case). ``Set``, ``Redirect``, ``Compile``
#: and ``BusCoords`` are checked further (options, paths).
SAFE_COMMANDS = frozenset(
    {
        "new", "edit", "more", "~", "batchedit", "clear", "clearall", "calcvoltagebases",
        "setkvbase", "open", "close", "enable", "disable", "set", "redirect", "compile",
        "buscoords", "like",
    }
)  # fmt: skip

#: Options a script may ``Set`` (lower case). ``DataPath``, ``DefaultEditor``,
#: ``CaseName``, ``Demand``, ``Mode``, ``ShowExport``, ... are refused.
SAFE_SET_OPTIONS = frozenset(
    {
        "defaultbasefrequency", "basefrequency", "voltagebases", "earthmodel", "tolerance",
        "maxiterations", "maxcontroliter", "loadmult", "normvminpu", "normvmaxpu",
        "emergvminpu", "emergvmaxpu", "defaultyearly", "defaultdaily", "algorithm",
        "controlmode", "loadmodel", "frequency",
    }
)  # fmt: skip

#: Element classes a ``New``/``Edit`` may name (lower case).
SAFE_CLASSES = frozenset(
    {
        "circuit", "vsource", "isource", "line", "linecode", "linegeometry", "linespacing",
        "wiredata", "cndata", "tsdata", "transformer", "xfmrcode", "autotrans", "load",
        "loadshape", "tshape", "priceshape", "growthshape", "xycurve", "spectrum",
        "capacitor", "capcontrol", "regcontrol", "reactor", "generator", "pvsystem",
        "storage", "fuse", "recloser", "relay", "swtcontrol", "energymeter", "monitor",
        "fault", "invcontrol", "storagecontroller", "expcontrol", "gencontrol",
    }
)  # fmt: skip

#: Properties that name a file to read (lower case); the file must be inside the folder.
FILE_PROPERTIES = ("file", "csvfile", "sngfile", "dblfile", "pqcsvfile")

_ENGINE_LOCK = threading.Lock()
_FILE_REF = re.compile(r"\b(" + "|".join(FILE_PROPERTIES) + r")\s*=\s*([^\s),]+)", re.I)
_SET_OPTION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=")
_SQRT3 = math.sqrt(3.0)


# --------------------------------------------------------------------------- scanning
def _strip_comment(line: str) -> str:
    for mark in ("!", "//"):
        cut = line.find(mark)
        if cut >= 0:
            line = line[:cut]
    return line.strip()


def _unquote(token: str) -> str:
    token = token.strip()
    while len(token) >= 2 and token[0] + token[-1] in ('""', "''", "()", "[]", "{}"):
        token = token[1:-1].strip()
    return token


def _inside(root: Path, base: Path, name: str, where: tuple[Path, int], command: str) -> Path:
    """Resolve ``name`` relative to ``base``; refuse it unless inside ``root``."""
    target = (base / _unquote(name)).resolve()
    if not target.is_relative_to(root):
        raise _fail(where, f"refused '{command}': path leaves the feeder folder")
    return target


def _fail(where: tuple[Path, int], message: str) -> ConfigError:
    """A one-line error naming the file and line of a script."""
    return ConfigError(f"line {where[1]}: {message}", file=where[0])


def _refuse(where: tuple[Path, int], shown: str, why: str) -> ConfigError:
    return _fail(where, f"refused command '{shown}' ({why})")


def _check_verb(verb: str, rest: str, where: tuple[Path, int], shown: str) -> None:
    """Refuse a command that is not a circuit definition (or a ``Set`` of a bad option)."""
    if "=" in verb and "." in verb.split("=", 1)[0]:  # Class.name.property=value
        if verb.split(".", 1)[0] not in SAFE_CLASSES:
            raise _refuse(where, shown, "not a circuit definition")
        return
    if verb not in SAFE_COMMANDS:
        raise _refuse(where, shown, "not a circuit definition")
    if verb in ("new", "edit", "like") and rest:
        element_class = rest.split(None, 1)[0].split("=")[-1].split(".", 1)[0].lower()
        if element_class not in SAFE_CLASSES:
            raise _refuse(where, shown, f"class '{element_class}'")
    if verb == "set":
        for option in _SET_OPTION.findall(rest):
            if option.lower() not in SAFE_SET_OPTIONS:
                raise _refuse(where, shown, f"option '{option}'")


def _check_line(text: str, root: Path, file: Path, lineno: int) -> list[tuple[str, Path]]:
    """Check one command line; return ``(kind, path)`` of the files it reads."""
    where = (file, lineno)
    shown = text if len(text) <= 60 else text[:57] + "..."
    words = text.split(None, 1)
    verb = words[0].lower()
    rest = words[1] if len(words) > 1 else ""
    found = []
    for match in _FILE_REF.finditer(text):
        target = _inside(root, file.parent, match.group(2), where, shown)
        if not target.is_file():
            raise _fail(where, f"'{shown}': file not found")
        found.append(("data", target))
    _check_verb(verb, rest, where, shown)
    if verb not in ("redirect", "compile", "buscoords"):
        return found
    if not rest.strip():
        raise _fail(where, f"'{shown}' names no file")
    target = _inside(root, file.parent, rest.strip(), where, shown)
    if not target.is_file():
        raise _fail(where, f"'{shown}': file not found")
    return [*found, (verb, target)]


def scan_script(master: str | Path, root: str | Path | None = None) -> list[Path]:
    """Refuse an OpenDSS script that does more than define a circuit.

    Parameters
    ----------
    master
        The master ``.dss`` file.
    root
        The feeder folder every referenced file must stay inside (default: the master's).

    Returns
    -------
    list of Path
        The master and every file it redirects/compiles or reads bus coordinates or
        ``file=`` data from (each once, in order).

    Raises
    ------
    ConfigError
        One line naming file, line and command: a missing file, a refused command, an
        option that is not allow-listed, a path leaving the folder.
    """
    master = Path(master).resolve()
    if not master.is_file():
        raise ConfigError("OpenDSS master file not found", file=master)
    root_dir = Path(root).resolve() if root is not None else master.parent
    if not master.is_relative_to(root_dir):
        raise ConfigError("master file is outside the feeder folder", file=master)
    seen: list[Path] = []
    pending = [master]
    while pending:
        file = pending.pop(0)
        if file in seen:
            continue
        seen.append(file)
        for found in _scan_file(file, root_dir):
            if found[0] in ("redirect", "compile"):
                pending.append(found[1])
            elif found[1] not in seen:
                seen.append(found[1])
    return seen


def _scan_file(file: Path, root: Path) -> list[tuple[str, Path]]:
    text = file.read_bytes().replace(b"\0", b" ").decode("utf-8", errors="replace")
    found: list[tuple[str, Path]] = []
    in_block = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if in_block:
            if "*/" in line:
                in_block = False
                line = line.split("*/", 1)[1].strip()
            else:
                continue
        if line.startswith("/*"):
            in_block = "*/" not in line
            continue
        line = _strip_comment(line)
        if not line:
            continue
        found.extend(_check_line(line, root, file, lineno))
    return found


# --------------------------------------------------------------------------- compiling
def _engine() -> Any:
    import opendssdirect as dss

    return dss


def compile_circuit(master: str | Path, workdir: str | Path) -> Any:
    """Scan, copy into ``workdir`` and compile an OpenDSS circuit; solve its snapshot.

    Parameters
    ----------
    master
        The master ``.dss`` file (its folder is the feeder folder).
    workdir
        An empty temporary folder: the copy of the scanned files and the engine's data
        path (nothing is written elsewhere).

    Returns
    -------
    module
        The :mod:`opendssdirect` engine, holding the compiled, solved circuit.

    Raises
    ------
    ConfigError
        A refused script (see :func:`scan_script`), or the engine's compile error with its
        message.
    """
    master = Path(master).resolve()
    root = master.parent
    files = scan_script(master, root)
    work = Path(workdir).resolve()
    for file in files:
        target = work / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    dss = _engine()
    basic = dss.Basic
    for flag in ("AllowForms", "AllowEditor", "AllowChangeDir", "AllowDOScmd"):
        if hasattr(basic, flag):
            getattr(basic, flag)(False)
    dss.Text.Command("clear")
    basic.DataPath(str(work))
    copy = work / master.relative_to(root)
    try:
        dss.Text.Command(f'compile "{copy}"')
    except Exception as exc:  # the engine raises DSSException with its message
        message = " ".join(str(exc).replace(str(work), str(root)).split())
        raise ConfigError(f"OpenDSS compile error: {message}", file=master) from None
    basic.DataPath(str(work))
    dss.Solution.Solve()
    if not dss.Solution.Converged():
        raise ConfigError("OpenDSS snapshot did not converge", file=master)
    return dss


# --------------------------------------------------------------------------- conversion
@dataclass
class Conversion:
    """A converted OpenDSS circuit.

    Attributes
    ----------
    net
        Balanced pandapower net (MW/MVA inside).
    report
        One line per element class not converted (and per fixed-tap note), e.g.
        ``"CapControl: 4 not converted (capacitors kept at their present state)"``.
    loads
        One row per ``net.load`` row: ``name``, ``load_class`` (residential|commercial),
        ``yearly`` (loadshape name), ``customers``, ``p_kw`` [kW], ``q_kvar`` [kvar].
    bus_xy
        Schematic bus coordinates (``x``, ``y``, no CRS), indexed by ``net.bus`` index.
    service_trafos, substation_trafos
        Names of the transformers whose secondary is below 1 kV / whose primary is above
        35 kV.
    head_line
        Name of the feeder-head line (the first ``EnergyMeter``'s element when it is a
        line, else ``None``).
    time_index, load_p_kw, load_q_kvar
        The loads' yearly loadshapes as kW and kvar per load, shape (time, load),
        ``net.load`` order (see :func:`yearly_profiles`).
    sgen_p_kw
        Generation per sgen [kW], shape (time, sgen), ``net.sgen`` order (see
        :func:`generation_profiles`).
    """

    net: pp.pandapowerNet
    report: list[str] = field(default_factory=list)
    loads: pd.DataFrame = field(default_factory=pd.DataFrame)
    bus_xy: pd.DataFrame = field(default_factory=pd.DataFrame)
    service_trafos: list[str] = field(default_factory=list)
    substation_trafos: list[str] = field(default_factory=list)
    head_line: str | None = None
    time_index: pd.DatetimeIndex | None = None
    load_p_kw: np.ndarray | None = None
    load_q_kvar: np.ndarray | None = None
    sgen_p_kw: np.ndarray | None = None


def _each(collection: Any) -> Any:
    """Iterate an opendssdirect collection (enabled elements), yielding its names."""
    index = collection.First()
    while index > 0:
        yield collection.Name()
        index = collection.Next()


def _buses(dss: Any, net: pp.pandapowerNet) -> tuple[dict[str, int], pd.DataFrame]:
    names, vn_kv, xy = [], [], []
    for n, name in enumerate(dss.Circuit.AllBusNames()):
        dss.Circuit.SetActiveBus(name)
        kv_ln = float(dss.Bus.kVBase())
        names.append(name)
        vn_kv.append(kv_ln * _SQRT3 if kv_ln > 0 else 1.0)
        if dss.Bus.Coorddefined():
            xy.append((n, float(dss.Bus.X()), float(dss.Bus.Y())))
    created = pp.create_buses(net, len(names), vn_kv=np.array(vn_kv), name=names)
    index = {name.lower(): int(bus) for name, bus in zip(names, created, strict=True)}
    frame = pd.DataFrame(xy, columns=["bus", "x", "y"])
    frame["bus"] = np.asarray(created)[frame["bus"].to_numpy(dtype=int)] if xy else []
    return index, frame.set_index("bus")


def _bus_of(spec: str) -> str:
    return spec.split(".", 1)[0].lower()


def _series_link(
    net: pp.pandapowerNet,
    from_bus: int,
    to_bus: int,
    r_ohm: float,
    x_ohm: float,
    amps: float,
    name: str,
) -> None:
    """A series impedance [ohm] as a 1 km line (gridplan's solver models lines, not
    pandapower ``impedance`` elements), at least :data:`MIN_IMPEDANCE_PU`."""
    z_min = MIN_IMPEDANCE_PU * float(net.bus.vn_kv.at[from_bus]) ** 2
    stretch = max(1.0, z_min / max(math.hypot(r_ohm, x_ohm), 1e-12))
    pp.create_line_from_parameters(
        net, from_bus, to_bus, length_km=1.0, r_ohm_per_km=max(r_ohm * stretch, 0.0),
        x_ohm_per_km=max(x_ohm * stretch, z_min), c_nf_per_km=0.0, max_i_ka=amps / 1000.0,
        name=name,
    )  # fmt: skip


def _source(dss: Any, net: pp.pandapowerNet, buses: dict[str, int]) -> None:
    dss.Vsources.First()
    name = dss.Vsources.Name()
    dss.Circuit.SetActiveElement(f"Vsource.{name}")
    bus = buses[_bus_of(dss.CktElement.BusNames()[0])]
    ohms = []
    for prop in ("R1", "X1"):
        dss.Text.Command(f"? Vsource.{name}.{prop}")
        ohms.append(float(dss.Text.Result()))
    vn_kv = float(dss.Vsources.BasekV())
    net.bus.at[bus, "vn_kv"] = vn_kv
    grid_bus = pp.create_bus(net, vn_kv=vn_kv, name=f"{name}_grid")
    pp.create_ext_grid(net, grid_bus, vm_pu=float(dss.Vsources.PU()), name=name)
    _series_link(net, grid_bus, bus, ohms[0], ohms[1], 1e5, f"Vsource.{name}")


_LENGTH_KM = {0: 1.0, 1: 1.609344, 2: 0.3048e-3 * 1000, 3: 1.0, 4: 1e-3, 5: 0.3048e-3,
              6: 0.0254e-3, 7: 1e-5}  # fmt: skip
# OpenDSS line units: 0 none, 1 mi, 2 kft, 3 km, 4 m, 5 ft, 6 in, 7 cm


def _positive_sequence(matrix: list[float], n: int) -> float:
    values = np.asarray(matrix, dtype=float).reshape(n, n)
    if n < 3:
        return float(np.mean(np.diag(values)))
    off = values[~np.eye(n, dtype=bool)]
    return float(np.mean(np.diag(values)) - np.mean(off))


#: Smallest series impedance of a converted line or source [pu on 1 MVA and the bus's
#: base]. Busbar links of a few micro-ohm make the Newton-Raphson Jacobian singular; they
#: get this impedance instead (a voltage drop below 1e-6 pu per 1 MVA carried).
MIN_IMPEDANCE_PU = 1e-6


def _lines(dss: Any, net: pp.pandapowerNet, buses: dict[str, int]) -> int:
    """Convert enabled lines; return how many have an open terminal."""
    rows = []
    for name in _each(dss.Lines):
        n = int(dss.Lines.Phases())
        length = float(dss.Lines.Length())
        length_km = max(length * _LENGTH_KM.get(int(dss.Lines.Units()), 1.0), 1e-6)
        scale = length / length_km  # matrix per unit length -> per km
        r = _positive_sequence(dss.Lines.RMatrix(), n) * scale * 3.0 / n
        x = _positive_sequence(dss.Lines.XMatrix(), n) * scale * 3.0 / n
        c = _positive_sequence(dss.Lines.CMatrix(), n) * scale * n / 3.0
        from_bus = buses[_bus_of(dss.Lines.Bus1())]
        z_min = MIN_IMPEDANCE_PU * float(net.bus.vn_kv.at[from_bus]) ** 2 / length_km
        stretch = max(1.0, z_min / max(math.hypot(r, x), 1e-12))
        is_open = any(dss.CktElement.IsOpen(term, 0) for term in (1, 2))
        rows.append(
            (from_bus, buses[_bus_of(dss.Lines.Bus2())], length_km, max(r * stretch, 1e-9),
             max(x * stretch, 1e-9), max(c, 0.0),
             (float(dss.Lines.NormAmps()) or 400.0) * n / 3.0 / 1000.0, name, not is_open)
        )  # fmt: skip
    cols = list(zip(*rows, strict=True))
    pp.create_lines_from_parameters(
        net, np.array(cols[0]), np.array(cols[1]), length_km=np.array(cols[2]),
        r_ohm_per_km=np.array(cols[3]), x_ohm_per_km=np.array(cols[4]),
        c_nf_per_km=np.array(cols[5]), max_i_ka=np.array(cols[6]), name=list(cols[7]),
        in_service=np.array(cols[8]), type="ol",
    )  # fmt: skip
    return int(len(rows) - sum(cols[8]))


def _winding_kv(dss: Any, phases: int, w: int) -> float:
    dss.Transformers.Wdg(w)
    kv = float(dss.Transformers.kV()) * float(dss.Transformers.Tap())
    if phases == 1 and not dss.Transformers.IsDelta():
        kv *= _SQRT3
    return kv


def _query(dss: Any, element: str, prop: str) -> float:
    dss.Text.Command(f"? {element}.{prop}")
    return float(dss.Text.Result())


def _transformers(dss: Any, net: pp.pandapowerNet, buses: dict[str, int], conv: Conversion) -> None:
    skipped, rows, n_off_tap = [], [], 0
    for name in _each(dss.Transformers):
        if int(dss.Transformers.NumWindings()) != 2:
            skipped.append(name)
            continue
        phases = int(dss.CktElement.NumPhases())
        bus_names = dss.CktElement.BusNames()
        kv = [_winding_kv(dss, phases, w) for w in (1, 2)]
        r_pct, off_tap = 0.0, False
        for w in (1, 2):
            dss.Transformers.Wdg(w)
            r_pct += float(dss.Transformers.R())
            off_tap |= abs(float(dss.Transformers.Tap()) - 1.0) > 1e-9
        n_off_tap += int(off_tap)
        kva = float(dss.Transformers.kVA())
        x_pct = float(dss.Transformers.Xhl())
        noload_pct = _query(dss, f"Transformer.{name}", "%noloadloss")
        imag_pct = _query(dss, f"Transformer.{name}", "%imag")
        rows.append(
            (buses[_bus_of(bus_names[0])], buses[_bus_of(bus_names[1])], kva / 1000.0,
             kv[0], kv[1], r_pct, math.hypot(r_pct, x_pct), noload_pct * kva / 100.0,
             math.hypot(imag_pct, noload_pct), name)
        )  # fmt: skip
        if kv[1] < 1.0:
            conv.service_trafos.append(name)
        elif kv[0] > 35.0:
            conv.substation_trafos.append(name)
    if rows:
        cols = [np.array(c) for c in zip(*rows, strict=True)]
        pp.create_transformers_from_parameters(
            net, cols[0], cols[1], sn_mva=cols[2], vn_hv_kv=cols[3], vn_lv_kv=cols[4],
            vkr_percent=cols[5], vk_percent=cols[6], pfe_kw=cols[7], i0_percent=cols[8],
            name=list(cols[9]), shift_degree=0.0,
        )  # fmt: skip
    conv.report.append(
        f"Transformer: taps fixed at their present position ({n_off_tap} of {len(rows)} "
        "off nominal)"
    )
    if skipped:
        conv.report.append(
            f"Transformer: {len(skipped)} with three or more windings not converted "
            f"(e.g. {skipped[0]})"
        )


def _reactors(dss: Any, net: pp.pandapowerNet, buses: dict[str, int], conv: Conversion) -> None:
    shunt = []
    for name in _each(dss.Reactors):
        bus1, bus2 = dss.Reactors.Bus1(), dss.Reactors.Bus2()
        if not bus2 or _bus_of(bus2) == _bus_of(bus1):
            shunt.append(name)
            continue
        _series_link(
            net, buses[_bus_of(bus1)], buses[_bus_of(bus2)], float(dss.Reactors.R()),
            float(dss.Reactors.X()), float(dss.CktElement.NormalAmps()) or 1e5,
            f"Reactor.{name}",
        )  # fmt: skip
    if shunt:
        conv.report.append(f"Reactor: {len(shunt)} shunt reactors not converted ({shunt[0]})")


def _capacitor_kvar(dss: Any) -> float:
    """Rated kvar of the active capacitor's closed steps [kvar]."""
    states = list(dss.Capacitors.States())
    closed = sum(1 for s in states if s) / max(len(states), 1)
    return float(dss.Capacitors.kvar()) * closed


def _capacitors(dss: Any, net: pp.pandapowerNet, buses: dict[str, int]) -> None:
    for name in _each(dss.Capacitors):
        kv = float(dss.Capacitors.kV())
        if int(dss.CktElement.NumPhases()) == 1 and not dss.Capacitors.IsDelta():
            kv *= _SQRT3
        pp.create_shunt(
            net, buses[_bus_of(dss.CktElement.BusNames()[0])],
            q_mvar=-_capacitor_kvar(dss) / 1000.0, p_mw=0.0, vn_kv=kv, name=name,
        )  # fmt: skip


def _load_class(yearly: str, dss_class: int, mapping: dict[str, str], vn_kv: float) -> str:
    if yearly.lower() in mapping:
        return mapping[yearly.lower()]
    if vn_kv >= 1.0:
        return "primary"
    if yearly.lower().startswith("commercial") or dss_class > 1:
        return "commercial"
    return "residential"


def _loads(
    dss: Any, net: pp.pandapowerNet, buses: dict[str, int], mapping: dict[str, str]
) -> pd.DataFrame:
    rows = []
    for name in _each(dss.Loads):
        yearly = str(dss.Loads.Yearly())
        bus = buses[_bus_of(dss.CktElement.BusNames()[0])]
        vn_kv = float(net.bus.vn_kv.at[bus])
        rows.append(
            {
                "name": name,
                "bus": bus,
                "load_class": _load_class(yearly, int(dss.Loads.Class()), mapping, vn_kv),
                "yearly": yearly,
                "customers": int(dss.Loads.NumCust()),
                "p_kw": float(dss.Loads.kW()),
                "q_kvar": float(dss.Loads.kvar()),
            }
        )
    frame = pd.DataFrame(rows)
    pp.create_loads(
        net, frame.bus.to_numpy(), p_mw=frame.p_kw.to_numpy() / 1000.0,
        q_mvar=frame.q_kvar.to_numpy() / 1000.0, name=list(frame.name),
    )  # fmt: skip
    return frame.drop(columns="bus")


def _generation(dss: Any, net: pp.pandapowerNet, buses: dict[str, int]) -> None:
    for name in _each(dss.Generators):
        pp.create_sgen(
            net, buses[_bus_of(dss.CktElement.BusNames()[0])],
            p_mw=float(dss.Generators.kW()) / 1000.0,
            q_mvar=float(dss.Generators.kvar()) / 1000.0, name=f"Generator.{name}",
        )  # fmt: skip
    for name in _each(dss.PVsystems):
        pp.create_sgen(
            net, buses[_bus_of(dss.CktElement.BusNames()[0])],
            p_mw=float(dss.PVsystems.kW()) / 1000.0,
            q_mvar=float(dss.PVsystems.kvar()) / 1000.0, name=f"PVSystem.{name}", type="PV",
        )  # fmt: skip


#: Element classes converted above (lower case); every other class is reported.
CONVERTED_CLASSES = frozenset(
    {"vsource", "line", "transformer", "reactor", "capacitor", "load", "generator",
     "pvsystem"}
)  # fmt: skip


def _report_rest(dss: Any, conv: Conversion, n_open: int) -> None:
    counts: dict[str, int] = {}
    for element in dss.Circuit.AllElementNames():
        kind = element.split(".", 1)[0]
        if kind.lower() not in CONVERTED_CLASSES:
            counts[kind] = counts.get(kind, 0) + 1
    notes = {
        "CapControl": "capacitors kept at their present state",
        "RegControl": "regulators fixed at their present tap",
        "EnergyMeter": "metering only; its line is the feeder head",
        "Monitor": "metering only",
    }
    for kind, count in sorted(counts.items()):
        conv.report.append(f"{kind}: {count} not converted ({notes.get(kind, 'no model')})")
    n_disabled = len(dss.Lines.AllNames()) - sum(1 for _ in _each(dss.Lines))
    if n_disabled > 0:
        conv.report.append(f"Line: {n_disabled} disabled in the model (open points), not converted")
    if n_open:
        conv.report.append(f"Line: {n_open} with an open terminal, converted out of service")


def _head_line(dss: Any) -> str | None:
    if dss.Meters.First() <= 0:
        return None
    element = str(dss.Meters.MeteredElement())
    kind, _, name = element.partition(".")
    return name if kind.lower() == "line" else None


def convert_compiled(dss: Any, class_map: dict[str, str] | None = None) -> Conversion:
    """Convert the engine's compiled circuit to a balanced pandapower net (module rules)."""
    net = pp.create_empty_network(name=str(dss.Circuit.Name()), f_hz=60.0)
    conv = Conversion(net=net)
    buses, conv.bus_xy = _buses(dss, net)
    _source(dss, net, buses)
    n_open = _lines(dss, net, buses)
    _transformers(dss, net, buses, conv)
    _reactors(dss, net, buses, conv)
    _capacitors(dss, net, buses)
    mapping = {str(k).lower(): v for k, v in (class_map or {}).items()}
    conv.loads = _loads(dss, net, buses, mapping)
    _generation(dss, net, buses)
    _report_rest(dss, conv, n_open)
    conv.head_line = _head_line(dss)
    net.load["profile"] = conv.loads.load_class.to_numpy()
    net.load["customers"] = conv.loads.customers.to_numpy()
    _drop_isolated(net)
    conv.time_index, conv.load_p_kw, conv.load_q_kvar = yearly_profiles(dss, conv)
    conv.sgen_p_kw = generation_profiles(dss, conv)
    return conv


#: Year the loadshapes are placed on: the EPRI models name none; 2021 is a non-leap year
#: whose 8,760 hours match an 8,760-point shape.
PROFILE_YEAR = 2021


def _shape(dss: Any, name: str, n_steps: int) -> tuple[np.ndarray, np.ndarray, bool]:
    dss.LoadShape.Name(name)
    p = np.asarray(dss.LoadShape.PMult(), dtype=float)
    q = np.asarray(dss.LoadShape.QMult(), dtype=float)
    if len(q) != len(p):
        q = p  # no Q multipliers: Q follows P (as OpenDSS does)
    reps = -(-n_steps // len(p))  # shorter shapes repeat, as in OpenDSS
    return np.tile(p, reps)[:n_steps], np.tile(q, reps)[:n_steps], bool(dss.LoadShape.UseActual())


def yearly_profiles(dss: Any, conv: Conversion) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """The loads' yearly loadshapes as kW/kvar per load at the shapes' own resolution.

    A load's power at step t is its nominal kW (kvar) x the P (Q) multiplier of its
    ``yearly`` loadshape (the actual kW when the shape has ``UseActual``); a shape shorter
    than the longest one is repeated; a load without a yearly shape keeps its nominal
    power (reported). The time axis starts on 1 January :data:`PROFILE_YEAR`.

    Returns
    -------
    tuple
        ``(time_index, load_p_kw, load_q_kvar)``, arrays of shape (time, load) [kW],
        [kvar].
    """
    names = {str(n).lower() for n in dss.LoadShape.AllNames()}
    used = sorted({y.lower() for y in conv.loads.yearly if y.lower() in names})
    steps, step_h = 8760, 1.0
    for name in used:
        dss.LoadShape.Name(name)
        steps = max(steps, int(dss.LoadShape.Npts()))
        step_h = float(dss.LoadShape.HrInterval()) or step_h
    shapes = {name: _shape(dss, name, steps) for name in used}
    p_kw = np.tile(conv.loads.p_kw.to_numpy(dtype=float), (steps, 1))
    q_kvar = np.tile(conv.loads.q_kvar.to_numpy(dtype=float), (steps, 1))
    missing = 0
    for col, yearly in enumerate(conv.loads.yearly.str.lower()):
        if yearly not in shapes:
            missing += 1
            continue
        p, q, actual = shapes[yearly]
        p_kw[:, col] = p if actual else p * p_kw[0, col]
        q_kvar[:, col] = q if actual else q * q_kvar[0, col]
    if missing:
        conv.report.append(f"Load: {missing} without a yearly loadshape keep their nominal kW")
    start = pd.Timestamp(PROFILE_YEAR, 1, 1)
    time_index = pd.date_range(start, periods=steps, freq=pd.Timedelta(hours=step_h))
    return time_index, p_kw, q_kvar


def generation_profiles(dss: Any, conv: Conversion) -> np.ndarray:
    """Generation per sgen [kW], shape (time, sgen), on :func:`yearly_profiles`' time axis.

    A generator's output is its kW x its ``yearly`` loadshape's multiplier; a PV system's is
    its ``Pmpp`` x ``Irradiance`` x its ``yearly`` multiplier (the irradiance shape of a
    yearly OpenDSS run, in kW/m² of 1 kW/m² standard irradiance), capped at its kVA. An
    element without a yearly shape gets no output (never a constant nameplate output, night
    included), and the report says so: give its profile in the spec instead.
    """
    assert conv.time_index is not None
    n_steps = len(conv.time_index)
    out = np.zeros((n_steps, len(conv.net.sgen)))
    shapes = {str(n).lower() for n in dss.LoadShape.AllNames()}
    column = {str(name): k for k, name in enumerate(conv.net.sgen.name)}
    without = 0
    for kind, collection in (("Generator", dss.Generators), ("PVSystem", dss.PVsystems)):
        for name in _each(collection):
            col = column.get(f"{kind}.{name}")
            shape_of = collection.Yearly if kind == "Generator" else collection.yearly
            yearly = str(shape_of()).lower() if col is not None else ""
            if col is None or not yearly or yearly not in shapes:
                without += col is not None
                continue
            mult, _, actual = _shape(dss, yearly, n_steps)
            if kind == "Generator":
                out[:, col] = mult if actual else mult * float(collection.kW())
            else:
                scale = float(collection.Pmpp()) * float(collection.Irradiance())
                out[:, col] = np.minimum(mult * scale, float(collection.kVARated()))
    if without:
        conv.report.append(
            f"Generator/PVSystem: {without} without a yearly loadshape produce nothing in the "
            "profiles (give a PV profile in the spec)"
        )
    return out


def _drop_isolated(net: pp.pandapowerNet) -> None:
    """Put buses not connected to the external grid out of service."""
    import pandapower.topology as top

    graph = top.create_nxgraph(net, respect_switches=True)
    reached: set[int] = set()
    for bus in net.ext_grid.bus:
        reached |= set(top.connected_component(graph, int(bus)))
    isolated = net.bus.index.difference(pd.Index(sorted(reached)))
    net.bus.loc[isolated, "in_service"] = False


def convert(master: str | Path, class_map: dict[str, str] | None = None) -> Conversion:
    """Scan, compile (in a temporary folder) and convert an OpenDSS circuit.

    Parameters
    ----------
    master
        The master ``.dss`` file.
    class_map
        Loadshape name -> load class (``residential``/``commercial``), overriding the rule
        of the module docstring.

    Returns
    -------
    Conversion
        The balanced net, the conversion report and the load table.
    """
    with _ENGINE_LOCK, tempfile.TemporaryDirectory(prefix="gridplan-dss-") as work:
        dss = compile_circuit(master, work)
        conv = convert_compiled(dss, class_map)
    for line in conv.report:
        log.info("%s: %s", Path(master).name, line)
    return conv


# --------------------------------------------------------------------------- validation
#: Tolerances of :func:`validate` (issue 17): feeder-head P and Q [fraction], service
#: transformer loading [%-pt, for a share of them], primary bus voltage [pu].
HEAD_TOLERANCE = 0.01
LOADING_TOLERANCE_PCT = 2.0
LOADING_SHARE = 0.95
VOLTAGE_TOLERANCE_PU = 0.02


@dataclass
class Comparison:
    """OpenDSS snapshot vs ``pandapower.runpp`` on the converted net at the same loads.

    Attributes
    ----------
    case
        Case name (``"nominal"``: the loads as defined; ``"light"``: ``LoadMult`` 0.3).
    head_p_kw, head_q_kvar
        Feeder-head (source) power, OpenDSS and pandapower [kW], [kvar].
    trafo_loading
        Per service transformer: ``name``, ``dss_pct``, ``pp_pct`` [% of kVA rating],
        ``diff_pct`` [%-pt].
    report
        The conversion report (:attr:`Conversion.report`).
    primary_vm
        Per primary bus (>= 1 kV): ``name``, ``dss_pu`` (mean over its nodes),
        ``dss_spread_pu`` (max - min of its node voltages: the unbalance the balanced net
        cannot show), ``dss_nodes`` (phases present), ``pp_pu``, ``diff_pu``; sorted by
        largest absolute difference.
    """

    case: str
    head_p_kw: tuple[float, float]
    head_q_kvar: tuple[float, float]
    trafo_loading: pd.DataFrame
    primary_vm: pd.DataFrame
    report: list[str] = field(default_factory=list)

    @property
    def head_p_error(self) -> float:
        """Relative feeder-head P difference [fraction]."""
        return abs(self.head_p_kw[1] - self.head_p_kw[0]) / abs(self.head_p_kw[0])

    @property
    def head_q_error(self) -> float:
        """Relative feeder-head Q difference [fraction]."""
        return abs(self.head_q_kvar[1] - self.head_q_kvar[0]) / abs(self.head_q_kvar[0])

    @property
    def loading_share_ok(self) -> float:
        """Share of service transformers within the loading tolerance [fraction]."""
        diff = self.trafo_loading.diff_pct.abs()
        return float((diff <= LOADING_TOLERANCE_PCT).mean()) if len(diff) else 1.0

    @property
    def passed(self) -> bool:
        """All three criteria of issue 17 hold."""
        vm_ok = self.primary_vm.diff_pu.abs().max() <= VOLTAGE_TOLERANCE_PU
        return bool(
            self.head_p_error <= HEAD_TOLERANCE
            and self.head_q_error <= HEAD_TOLERANCE
            and self.loading_share_ok >= LOADING_SHARE
            and vm_ok
        )

    def lines(self) -> list[str]:
        """A short human-readable summary (printed by ``gridplan feeders --check``)."""
        worst_t = self.trafo_loading.iloc[self.trafo_loading.diff_pct.abs().argmax()]
        worst_v = self.primary_vm.iloc[0]
        return [
            f"[{self.case}] feeder-head P: OpenDSS {self.head_p_kw[0]:.1f} kW, pandapower "
            f"{self.head_p_kw[1]:.1f} kW ({100 * self.head_p_error:.2f} %, limit 1 %)",
            f"[{self.case}] feeder-head Q: OpenDSS {self.head_q_kvar[0]:.1f} kvar, pandapower "
            f"{self.head_q_kvar[1]:.1f} kvar ({100 * self.head_q_error:.2f} %, limit 1 %)",
            f"[{self.case}] service transformers within 2 %-pt: "
            f"{100 * self.loading_share_ok:.1f} % of {len(self.trafo_loading)} (need 95 %); "
            f"worst {worst_t['name']}: {worst_t.dss_pct:.1f} % vs {worst_t.pp_pct:.1f} %",
            f"[{self.case}] primary voltages: largest difference {worst_v.diff_pu:+.4f} pu at "
            f"bus {worst_v['name']} (OpenDSS {worst_v.dss_pu:.4f}, pandapower "
            f"{worst_v.pp_pu:.4f}; limit 0.02 pu); largest: "
            + ", ".join(
                f"{r['name']} {r.diff_pu:+.4f} ({r.dss_nodes} phase(s), spread "
                f"{r.dss_spread_pu:.3f})"
                for _, r in self.primary_vm.head(3).iterrows()
            ),
            f"[{self.case}] unbalance: OpenDSS phase-voltage spread (max - min of a bus's "
            f"nodes) at primary buses: median {self.primary_vm.dss_spread_pu.median():.4f} pu, "
            f"max {self.primary_vm.dss_spread_pu.max():.4f} pu; the balanced net has one "
            "voltage per bus (the mean of the phases is compared; a one-phase lateral's "
            "voltage follows its own phase's drop on the trunk, which the balanced net "
            "averages)",
            f"[{self.case}] {'PASS' if self.passed else 'FAIL'}",
        ]


def _terminal_power(dss: Any, element: str) -> complex:
    """Complex power into terminal 1 of an element [kVA] (sum over its conductors)."""
    dss.Circuit.SetActiveElement(element)
    n = int(dss.CktElement.NumConductors())
    values = np.asarray(dss.CktElement.Powers(), dtype=float)[: 2 * n]
    return complex(values[0::2].sum(), values[1::2].sum())


def _dss_results(dss: Any, conv: Conversion) -> dict[str, Any]:
    total = dss.Circuit.TotalPower()
    loads = [_terminal_power(dss, f"Load.{name}") for name in conv.loads.name]
    loading = {}
    for name in conv.service_trafos:
        dss.Transformers.Name(name)
        kva = float(dss.Transformers.kVA())
        loading[name] = 100.0 * abs(_terminal_power(dss, f"Transformer.{name}")) / kva
    vm = {}
    for name in dss.Circuit.AllBusNames():
        dss.Circuit.SetActiveBus(name)
        if float(dss.Bus.kVBase()) * _SQRT3 >= 1.0:
            mags = np.asarray(dss.Bus.puVmagAngle(), dtype=float)[0::2]
            vm[name.lower()] = (float(mags.mean()), float(mags.max() - mags.min()), len(mags))
    capacitors = {name: _capacitor_kvar(dss) for name in _each(dss.Capacitors)}
    return {
        "head": complex(-total[0], -total[1]),
        "loads": loads,
        "loading": loading,
        "vm": vm,
        "capacitors": capacitors,
    }


def _compare(case: str, conv: Conversion, ref: dict[str, Any]) -> Comparison:
    net = conv.net
    net.load["p_mw"] = np.array([s.real for s in ref["loads"]]) / 1000.0
    net.load["q_mvar"] = np.array([s.imag for s in ref["loads"]]) / 1000.0
    kvar = pd.Series(ref["capacitors"], dtype=float)
    net.shunt["q_mvar"] = -kvar.reindex(net.shunt.name).to_numpy() / 1000.0
    pp.runpp(net, calculate_voltage_angles=True)
    # OpenDSS's total power is measured at the source bus, behind the Vsource impedance.
    source = net.line.name.str.startswith("Vsource.")
    head_p = -float(net.res_line.p_to_mw[source].sum()) * 1000.0
    head_q = -float(net.res_line.q_to_mvar[source].sum()) * 1000.0
    trafo = net.trafo.assign(
        pp_pct=100.0 * np.hypot(net.res_trafo.p_hv_mw, net.res_trafo.q_hv_mvar) / net.trafo.sn_mva
    ).set_index("name")
    loading = pd.DataFrame({"name": list(ref["loading"]), "dss_pct": list(ref["loading"].values())})
    loading["pp_pct"] = trafo.pp_pct.reindex(loading.name).to_numpy()
    loading["diff_pct"] = loading.pp_pct - loading.dss_pct
    bus_vm = pd.Series(net.res_bus.vm_pu.to_numpy(), index=net.bus.name.str.lower())
    vm = pd.DataFrame(
        [(name, *values) for name, values in ref["vm"].items()],
        columns=["name", "dss_pu", "dss_spread_pu", "dss_nodes"],
    )
    vm["pp_pu"] = bus_vm.reindex(vm.name).to_numpy()
    vm = vm.dropna()
    vm["diff_pu"] = vm.pp_pu - vm.dss_pu
    vm = vm.iloc[np.argsort(-vm.diff_pu.abs().to_numpy())].reset_index(drop=True)
    return Comparison(case, (ref["head"].real, head_p), (ref["head"].imag, head_q), loading, vm)


def _set_loads(dss: Any, conv: Conversion, step: int | None) -> None:
    """Set every OpenDSS load to its nominal power (``None``) or its profile at ``step``."""
    if step is None or conv.load_p_kw is None or conv.load_q_kvar is None:
        p_kw, q_kvar = conv.loads.p_kw.to_numpy(), conv.loads.q_kvar.to_numpy()
    else:
        p_kw, q_kvar = conv.load_p_kw[step], conv.load_q_kvar[step]
    for col, name in enumerate(conv.loads.name):
        dss.Loads.Name(name)
        dss.Loads.kW(float(p_kw[col]))
        dss.Loads.kvar(float(q_kvar[col]))


def validate(master: str | Path, class_map: dict[str, str] | None = None) -> list[Comparison]:
    """Compare OpenDSS's own snapshot with pandapower on the converted net.

    Three cases: the loads as the model defines them (``nominal``), and every load at its
    yearly-profile value in the hour of the highest (``peak hour``) and of the lowest
    (``light hour``) total load. In each, OpenDSS solves its snapshot (its controls,
    e.g. ``CapControl``, act); each load's power as OpenDSS solved it (its
    voltage-dependent model included) and each capacitor's state are set on the converted
    net, which ``pandapower.runpp`` solves. Compared: feeder-head P and Q at the source
    bus, the loading of every service transformer (apparent power at the primary terminal
    over the kVA rating) and the voltage of every primary bus (mean of its node voltages
    in OpenDSS).

    Parameters
    ----------
    master
        The master ``.dss`` file.
    class_map
        Loadshape name -> load class (see :func:`convert`).

    Returns
    -------
    list of Comparison
        One per case.
    """
    out = []
    with _ENGINE_LOCK, tempfile.TemporaryDirectory(prefix="gridplan-dss-") as work:
        dss = compile_circuit(master, work)
        conv = convert_compiled(dss, class_map)
        total = np.asarray(conv.load_p_kw).sum(axis=1)
        cases: dict[str, int | None] = {
            "nominal": None,
            f"peak hour {int(total.argmax())}": int(total.argmax()),
            f"light hour {int(total.argmin())}": int(total.argmin()),
        }
        for case, step in cases.items():
            _set_loads(dss, conv, step)
            dss.Solution.Solve()
            out.append(_compare(case, conv, _dss_results(dss, conv)))
            out[-1].report = list(conv.report)
    return out

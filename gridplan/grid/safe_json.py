"""Load and save pandapower JSON nets without letting the file run code.

pandapower's ``from_json`` decodes ``{"_module": ..., "_class": ..., "_object": ...}`` entries
through an object hook (``pandapower.io_utils.pp_hook`` / ``FromSerializableRegistry``) that
imports the named module (``importlib.import_module``), returns the named attribute (``_class:
"function"`` gives back any module-level callable), builds ``JSONSerializableClass`` objects
(controllers) from their saved state and passes the remaining keys of an entry as keyword
arguments to ``pandas.read_json`` or to the named class; a DataFrame whose ``_object`` is an
absolute ``.json`` path is read from disk. A crafted feeder file can therefore import arbitrary
modules (running their top-level code), return ``os.system`` into the net, call constructors
of classes named in the file, or pull local files into the net while it is being loaded.

:func:`load_pandapower_json` reads the file as plain JSON first (``json.loads`` without object
hook), walks the whole tree -- including the JSON texts nested in ``_object`` strings that
pandapower parses a second time -- and checks every type tag, and every extra key that would
reach ``pandas.read_json`` or a constructor, against an explicit allow-list of plain data types
(see :data:`ALLOWED_TYPES`). Only a file that passes is handed, unchanged, to pandapower's own
decoder, so an accepted file means exactly what it means in pandapower. Pickle files are never
read. :func:`check_net` then checks that the decoded net is a usable feeder.

pandapower parses the file and nested nets with Python's ``json`` but the tables of DataFrames
and Series with ``pandas.read_json``, whose parser differs: it drops a lone high surrogate, so
a key ``"\\ud800_module"`` (no tag for Python) becomes ``"_module"`` for pandas. The walker
checks what each parser reads, by construction: it refuses lone surrogates in any key or
string, refuses keys that read as a tag once invisible characters are dropped and Unicode
forms and case are folded (``"_MODULE"``, ``"\\uff3fmodule"``, ``"_mod\\x00ule"``), and walks
each table as pandas parses it as well (``<pandas>`` in paths) whenever that differs from
Python's reading. And since pandapower's object hook acts on every object as it is parsed,
also on the value of a key that a later copy of the key overwrites, every JSON text is parsed
refusing repeated keys. ``tests/test_safe_json.py`` fuzzes the walker against pandapower's
decoder.

The allow-list was derived from pandapower 3.5 ``io_utils`` (``to_serializable`` and
``FromSerializableRegistry``) and from files written by ``pandapower.to_json`` for
``pandapower.networks`` examples, ``mv_oberrhein``, CIGRE MV, MATPOWER case9 and the SimBench
net ``1-LV-semiurb4--0-sw`` (with geodata, std_types and ``res_*`` tables).
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.core.io import write_text

if TYPE_CHECKING:
    from pandapower.auxiliary import pandapowerNet

__all__ = [
    "ALLOWED_TYPES",
    "MAX_FILE_BYTES",
    "check_net",
    "load_pandapower_json",
    "save_pandapower_json",
    "validate_pandapower_json",
]

logger = logging.getLogger(__name__)

#: Largest feeder file :func:`load_pandapower_json` reads by default [bytes] (500 MiB; a
#: gridplan choice, ~50 times the 9.4 MB of SimBench ``1-LV-semiurb4--0-sw`` with its profiles).
MAX_FILE_BYTES = 500 * 1024**2

_MODULE = "_module"
_CLASS = "_class"
_OBJECT = "_object"
_TAG_KEYS = frozenset({_MODULE, _CLASS, _OBJECT})

_UTF8_BOM = b"\xef\xbb\xbf"
_PICKLE_SUFFIXES = frozenset({".p", ".pkl", ".pickle"})
_NET_TAG = ("pandapower.auxiliary", "pandapowerNet")


@dataclass(frozen=True)
class _Spec:
    """What an allowed ``(_module, _class)`` entry may contain.

    Attributes
    ----------
    kind
        Short name of the decoded type (used in messages).
    extra_keys
        Keys besides ``_module``/``_class``/``_object`` that pandapower writes for this type
        (they reach ``pandas.read_json`` or the constructor as keyword arguments).
    object_types
        Allowed JSON types of ``_object``.
    object_is_json
        ``True`` when a string ``_object`` is JSON text that pandapower parses again.
    """

    kind: str
    extra_keys: frozenset[str]
    object_types: tuple[type, ...]
    object_is_json: bool = False


_FRAME_KEYS = frozenset(
    {
        "dtype",
        "orient",
        "index_name",
        "column_name",
        "index_names",
        "column_names",
        "is_multiindex",
        "is_multicolumn",
    }
)
_SERIES_KEYS = frozenset({"dtype", "orient", "typ", "index_name", "index_names", "is_multiindex"})

_NET = _Spec("pandapower net", frozenset(), (dict, str), object_is_json=True)
_FRAME = _Spec("pandas DataFrame", _FRAME_KEYS, (str,), object_is_json=True)
_SERIES = _Spec("pandas Series", _SERIES_KEYS, (str,), object_is_json=True)
_GEOFRAME = _Spec(
    "geopandas GeoDataFrame", frozenset({"dtype", "crs", "columns"}), (str,), object_is_json=True
)
_INDEX = _Spec("pandas Index", frozenset({"dtype"}), (list,))
_NP_ARRAY = _Spec("numpy array", frozenset({"dtype"}), (list,))
_NP_SCALAR = _Spec("numpy scalar", frozenset(), (int, float, str))
_SEQUENCE = _Spec("tuple/set", frozenset(), (list,))
_COMPLEX = _Spec("complex number", frozenset(), (str, int, float))
_SHAPELY = _Spec("shapely geometry", frozenset(), (dict,))
_GRAPH = _Spec("networkx MultiGraph", frozenset(), (dict,))

_NUMPY_SCALARS = (
    "bool bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 intc uintc intp uintp "
    "longlong ulonglong short ushort byte ubyte long ulong float16 float32 float64 half single "
    "double longdouble complex64 complex128 csingle cdouble clongdouble str_"
).split()
_INDEX_CLASSES = (
    "Index",
    "RangeIndex",
    "DatetimeIndex",
    "TimedeltaIndex",
    "CategoricalIndex",
    "PeriodIndex",
)
_GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "LinearRing",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)
# ``type`` values a GeoJSON text in a ``geo`` column may carry: pandapower decodes those
# texts with ``geojson.loads``, whose hook calls ``getattr(geojson.factory, type)(**rest)``.
# "name"/"link" are the (legacy) GeoJSON CRS member types, which that hook leaves alone.
_GEOJSON_TYPES = _GEOMETRY_TYPES - {"LinearRing"} | {"Feature", "FeatureCollection", "name", "link"}

#: Every ``(_module, _class)`` pair a file may contain, with the decoded type it stands for.
#: Anything else -- controllers and other ``JSONSerializableClass`` objects, ``function`` or
#: ``method`` references, builtins other than tuple/set/frozenset/complex, enums, arbitrary
#: modules -- is refused before pandapower sees the file.
ALLOWED_TYPES: dict[tuple[str, str], _Spec] = {
    _NET_TAG: _NET,
    ("pandas.core.frame", "DataFrame"): _FRAME,
    ("pandas", "DataFrame"): _FRAME,
    ("pandas.core.series", "Series"): _SERIES,
    ("pandas", "Series"): _SERIES,
    ("geopandas.geodataframe", "GeoDataFrame"): _GEOFRAME,
    **{("pandas", name): _INDEX for name in _INDEX_CLASSES},
    ("numpy", "array"): _NP_ARRAY,
    **{("numpy", name): _NP_SCALAR for name in _NUMPY_SCALARS},
    ("builtins", "tuple"): _SEQUENCE,
    ("builtins", "set"): _SEQUENCE,
    ("builtins", "frozenset"): _SEQUENCE,
    ("builtins", "complex"): _COMPLEX,
    **{("shapely", name): _SHAPELY for name in sorted(_GEOMETRY_TYPES)},
    ("networkx", "MultiGraph"): _GRAPH,
}

_ALLOWED_SUMMARY = (
    "allowed are pandapower nets, pandas DataFrame/Series/Index, geopandas GeoDataFrame, numpy "
    "scalars and arrays, builtins tuple/set/frozenset/complex, shapely geometries and networkx "
    "MultiGraph (see gridplan.grid.safe_json.ALLOWED_TYPES)"
)

# dtype strings pandapower writes (``str(dtype)``); they reach ``pandas.read_json``/``astype``.
_DTYPE_NAMES = frozenset(
    {
        "bool",
        "boolean",
        "object",
        "O",
        "str",
        "string",
        "string[python]",
        "string[pyarrow]",
        "category",
        "geometry",
        "float16",
        "float32",
        "float64",
        "Float32",
        "Float64",
        "complex64",
        "complex128",
        *(f"{p}int{b}" for p in ("", "u") for b in (8, 16, 32, 64)),
        *(f"{p}Int{b}" for p in ("", "U") for b in (8, 16, 32, 64)),
    }
)
_TZ = r"(?:UTC[+-]\d{2}:\d{2}|[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,3})"
_DATETIME_DTYPE = re.compile(
    rf"(?:datetime64|timedelta64)\[(?:ns|us|ms|s)\]|datetime64\[(?:ns|us|ms|s), (?P<tz>{_TZ})\]"
)
_ORIENTS = frozenset({"split", "columns", "index", "records", "values"})
_CRS = re.compile(r"[A-Za-z]{2,10}:[A-Za-z0-9_.\-]{1,40}")


class _Parsed:
    """Path marker: the step from a JSON string to the JSON text it holds.

    ``<json>`` marks a text parsed by Python's ``json`` (as pandapower parses the file, nets,
    GeoDataFrames and GeoJSON), ``<pandas>`` the same text parsed by pandas' own JSON parser
    (as ``pandas.read_json`` parses the tables of DataFrames and Series).
    """

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


_PARSED = _Parsed("<json>")
_PANDAS = _Parsed("<pandas>")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# A path is a linked list (parent, step); rendered only when an error is raised.
_Path = tuple[Any, Any] | None


def _render(path: _Path) -> str:
    """Render a linked path as ``$.key[3]<json>.key``."""
    steps: list[Any] = []
    while path is not None:
        path, step = path
        steps.append(step)
    out = ["$"]
    for step in reversed(steps):
        if isinstance(step, _Parsed):
            out.append(step.label)
        elif isinstance(step, int):
            out.append(f"[{step}]")
        else:
            text = str(step)
            text = text if len(text) <= 40 else text[:37] + "..."
            out.append(f".{text}" if _IDENT.fullmatch(text) else f"[{json.dumps(text)}]")
    return "".join(out)


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a JSON value, cut to ``limit`` characters (lone surrogates escaped)."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _entry(node: dict[str, Any]) -> str:
    """Describe a tagged entry for an error message."""
    return f"_module={_short(node.get(_MODULE))}, _class={_short(node.get(_CLASS))}"


class _Refused(Exception):
    """Internal: the tree holds something not on the allow-list (path, message)."""

    def __init__(self, path: _Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class _DuplicateKey(ValueError):
    """Internal: a JSON object repeats a key (raised while parsing, see :func:`_loads`)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {_short(key)}")
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of :func:`_loads`: a dict, or :class:`_DuplicateKey`."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _loads(text: str) -> Any:
    """``json.loads`` refusing objects that repeat a key.

    pandapower's decoder (and ``geojson.loads``) run their object hook on every object while
    parsing, so the value of a repeated key is decoded -- its type tag acted on -- even
    though only the last value of the key is kept in the result. A parsed tree cannot show
    what was dropped, so every JSON text gridplan checks is parsed with this.

    Raises
    ------
    _DuplicateKey
        An object repeats a key (a ``ValueError``, like every other parse error).
    """
    return json.loads(text, object_pairs_hook=_unique_pairs)


def _duplicate_message(key: str) -> str:
    return (
        f"a JSON object repeats the key {_short(key)}; pandapower's decoder acts on the value "
        "of every copy although only the last is kept, so repeated keys are refused"
    )


_SURROGATE = re.compile("[\ud800-\udfff]")
# Unicode categories dropped before comparing a key with the type tags: control, format,
# surrogate and separator characters (invisible, or dropped by some JSON parsers).
_IGNORABLE = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


def _check_text(text: str, path: _Path, what: str = "string") -> None:
    """Refuse a string holding a lone UTF-16 surrogate (U+D800..U+DFFF)."""
    if not text.isascii() and _SURROGATE.search(text):
        raise _Refused(
            path,
            f"{what} {_short(text)} holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
            "escape); pandas' JSON parser drops it, so pandapower would decode other text than "
            "gridplan checked",
        )


def _visible(text: str) -> str:
    """``text`` without whitespace, control, format, surrogate and separator characters."""
    return "".join(
        ch for ch in text if not ch.isspace() and unicodedata.category(ch) not in _IGNORABLE
    )


@lru_cache(maxsize=65536)
def _tag_like(key: str) -> str | None:
    """The type tag ``key`` reads as once folded, or ``None``.

    Folding drops whitespace, control, format, surrogate and separator characters, applies
    Unicode NFKC normalisation and case folding, and drops such characters again: ``"_MODULE"``,
    ``"\\ud800_module"``, ``" _module"``, ``"_mod\\x00ule"`` and ``"\\uff3fmodule"`` all read as
    ``"_module"``.
    """
    if key.isascii():
        if len(key) < len(_CLASS):
            return None  # folding an ASCII key only removes characters
        folded = "".join(ch for ch in key if " " < ch < "\x7f").lower()
    else:
        folded = _visible(unicodedata.normalize("NFKC", _visible(key)).casefold())
    return folded if folded in _TAG_KEYS else None


def _check_keys(node: dict[Any, Any], path: _Path) -> None:
    """Refuse keys with lone surrogates, and keys that read as a type tag but are not one."""
    for key in node:
        if not isinstance(key, str) or key in _TAG_KEYS:
            continue
        _check_text(key, (path, key), "key")
        tag = _tag_like(key)
        if tag is not None:
            raise _Refused(
                (path, key),
                f"key {_short(key)} reads as the type tag '{tag}' once invisible characters are "
                "dropped and Unicode forms and case are folded; a JSON parser may take it for "
                "the tag, so it is refused",
            )


def _why_refused(module: str, cls: str) -> str:
    """Explain why a type tag that is not on the allow-list is refused."""
    if cls in ("function", "method"):
        return "function/method references are code and are never loaded"
    if module.startswith("pandapower.control") or module.startswith("pandapower.timeseries"):
        return "controllers and other pandapower objects are code and are never loaded"
    return "this type is not on gridplan's allow-list of plain data types"


def _one_of(value: Any, names: frozenset[str]) -> bool:
    """``True`` if ``value`` is a string in ``names`` (never hashes a JSON list or dict)."""
    return isinstance(value, str) and value in names


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def _check_dtype(value: Any, path: _Path) -> None:
    """Refuse a dtype string pandas would resolve outside the known set."""
    if isinstance(value, str):
        if value in _DTYPE_NAMES:
            return
        match = _DATETIME_DTYPE.fullmatch(value)
        if match and not (match.group("tz") or "").startswith("dateutil"):
            return
    raise _Refused(
        path,
        f"dtype {_short(value)} is not allowed; expected a numpy/pandas dtype name such as "
        "'float64', 'int64', 'bool', 'object', 'category' or 'datetime64[ns]'",
    )


def _extra_dtype(value: Any, spec: _Spec, where: _Path) -> None:
    if isinstance(value, dict) and spec in (_FRAME, _GEOFRAME):
        for column, dtype in value.items():
            _check_dtype(dtype, (where, column))
    elif not (isinstance(value, bool) and spec is _FRAME):
        _check_dtype(value, where)


def _extra_orient(value: Any, spec: _Spec, where: _Path) -> None:
    if not _one_of(value, _ORIENTS):
        raise _Refused(where, f"orient {_short(value)} is not one of {', '.join(sorted(_ORIENTS))}")


def _extra_typ(value: Any, spec: _Spec, where: _Path) -> None:
    if value != "series":
        raise _Refused(where, f"typ {_short(value)} is not allowed; expected 'series'")


def _extra_flag(value: Any, spec: _Spec, where: _Path) -> None:
    if not isinstance(value, bool):
        raise _Refused(where, f"{_last(where)} must be true or false, got {_short(value)}")


def _extra_name(value: Any, spec: _Spec, where: _Path) -> None:
    if not _is_scalar(value):
        raise _Refused(where, f"{_last(where)} must be a string, number or null")


def _extra_names(value: Any, spec: _Spec, where: _Path) -> None:
    if value is not None and not (isinstance(value, list) and all(_is_scalar(v) for v in value)):
        raise _Refused(where, f"{_last(where)} must be a list of strings/numbers or null")


def _extra_crs(value: Any, spec: _Spec, where: _Path) -> None:
    if value is not None and not (isinstance(value, str) and _CRS.fullmatch(value)):
        raise _Refused(where, f"crs {_short(value)} is not allowed; expected 'AUTHORITY:CODE'")


def _extra_columns(value: Any, spec: _Spec, where: _Path) -> None:
    if not isinstance(value, dict | list):
        raise _Refused(where, "columns must be a list or a pandas Index entry")


def _last(path: _Path) -> str:
    """The last step of a linked path (the key an extra-key check is about)."""
    return "" if path is None else str(path[1])


#: How each extra key of a tagged entry is checked (every key of every ``_Spec.extra_keys``).
_EXTRA_CHECKS: dict[str, Callable[[Any, _Spec, _Path], None]] = {
    "dtype": _extra_dtype,
    "orient": _extra_orient,
    "typ": _extra_typ,
    "is_multiindex": _extra_flag,
    "is_multicolumn": _extra_flag,
    "index_name": _extra_name,
    "column_name": _extra_name,
    "index_names": _extra_names,
    "column_names": _extra_names,
    "crs": _extra_crs,
    "columns": _extra_columns,
}


def _check_extras(node: dict[str, Any], spec: _Spec, path: _Path) -> None:
    """Check the keys besides the tag (they become keyword arguments in pandapower)."""
    for key, value in node.items():
        if key in _TAG_KEYS:
            continue
        where = (path, key)
        if key not in spec.extra_keys:
            allowed = ", ".join(sorted(spec.extra_keys)) or "none"
            raise _Refused(
                where,
                f"unexpected key {_short(key)} in {_entry(node)} ({spec.kind}); pandapower "
                f"would pass it on as a keyword argument; allowed extra keys: {allowed}",
            )
        _EXTRA_CHECKS[key](value, spec, where)


def _geo_cells_split(table: Any) -> Iterator[tuple[Any, _Path]]:
    if not isinstance(table, dict):
        return
    columns, data = table.get("columns"), table.get("data")
    if isinstance(columns, list) and isinstance(data, list):
        positions = [i for i, c in enumerate(columns) if c == "geo"]
        for r, row in enumerate(data):
            if isinstance(row, list):
                for i in positions:
                    if i < len(row):
                        yield row[i], (((None, "data"), r), i)


def _geo_cells_columns(table: Any) -> Iterator[tuple[Any, _Path]]:
    column = table.get("geo") if isinstance(table, dict) else None
    if isinstance(column, dict):
        for key, cell in column.items():
            yield cell, ((None, "geo"), key)


def _geo_cells_index(table: Any) -> Iterator[tuple[Any, _Path]]:
    if isinstance(table, dict):
        for key, row in table.items():
            if isinstance(row, dict) and "geo" in row:
                yield row["geo"], ((None, key), "geo")


def _geo_cells_records(table: Any) -> Iterator[tuple[Any, _Path]]:
    if isinstance(table, list):
        for r, row in enumerate(table):
            if isinstance(row, dict) and "geo" in row:
                yield row["geo"], ((None, r), "geo")


def _geo_cells(table: Any, orient: Any) -> Iterator[tuple[Any, _Path]]:
    """Yield the cells of a ``geo`` column of a DataFrame's JSON text (relative paths)."""
    if orient is None:
        orient = "columns"  # pandas' default for a DataFrame
    if orient == "split":
        yield from _geo_cells_split(table)
    elif orient == "columns":
        yield from _geo_cells_columns(table)
    elif orient == "index":
        yield from _geo_cells_index(table)
    elif orient == "records":
        yield from _geo_cells_records(table)


def _join(base: _Path, relative: _Path) -> _Path:
    """Append a relative linked path to ``base``."""
    steps: list[Any] = []
    while relative is not None:
        relative, step = relative
        steps.append(step)
    for step in reversed(steps):
        base = (base, step)
    return base


def _check_geojson(cell: Any, path: _Path) -> None:
    """Refuse GeoJSON ``type`` values outside the GeoJSON object types."""
    if isinstance(cell, str):
        try:
            cell = _loads(cell)
        except _DuplicateKey as exc:
            raise _Refused(path, _duplicate_message(exc.key)) from None
        except (ValueError, RecursionError):
            return  # pandapower cannot decode it either; it fails with a decode error
        path = (path, _PARSED)
    stack: list[tuple[Any, _Path]] = [(cell, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if "type" in node and not _one_of(kind, _GEOJSON_TYPES):
                raise _Refused(
                    (where, "type"),
                    f"GeoJSON type {_short(kind)} is not allowed; expected one of "
                    f"{', '.join(sorted(_GEOJSON_TYPES))}",
                )
            stack.extend((v, (where, k)) for k, v in node.items() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, (where, i)) for i, v in enumerate(node) if isinstance(v, dict | list))


def _parse_embedded(text: str, node: dict[str, Any], spec: _Spec, path: _Path) -> Any:
    """Parse the JSON text of an ``_object`` that pandapower parses again."""
    try:
        return _loads(text)
    except _DuplicateKey as exc:
        raise _Refused(path, _duplicate_message(exc.key)) from None
    except RecursionError:
        raise _Refused(path, f"the JSON text of {_entry(node)} is nested too deeply") from None
    except ValueError as exc:
        raise _Refused(
            path, f"_object of {_entry(node)} ({spec.kind}) must be JSON text: {exc}"
        ) from None


@lru_cache(maxsize=1)
def _pandas_json_loads() -> Callable[..., Any]:
    """The JSON parser ``pandas.read_json`` uses (pandas' vendored ujson)."""
    from pandas._libs import json as pandas_json

    loads = getattr(pandas_json, "ujson_loads", None) or pandas_json.loads
    return cast("Callable[..., Any]", loads)


def _parse_as_pandas(text: str, node: dict[str, Any], spec: _Spec, path: _Path) -> Any:
    """Parse an embedded table's text the way ``pandas.read_json`` does for pandapower.

    pandas' parser differs from Python's ``json``: it drops a lone high surrogate (so
    ``"\\ud800_module"`` becomes ``"_module"``), accepts trailing commas and more. The
    walker checks what pandas makes of the text too.
    """
    try:
        return _pandas_json_loads()(text, precise_float=True)
    except (ValueError, OverflowError, RecursionError) as exc:
        raise _Refused(
            path,
            f"pandas cannot parse the JSON text of {_entry(node)} ({spec.kind}): "
            f"{_clip(str(exc), 120)}",
        ) from None


def _embedded_views(
    text: str, node: dict[str, Any], spec: _Spec, path: _Path
) -> list[tuple[Any, _Path]]:
    """The JSON text of an ``_object`` as each parser pandapower uses for it reads it.

    Python's ``json`` view always (walked first, so its paths appear in messages); for
    DataFrames and Series also pandas' view, unless it equals the first (``==``: the same
    containers, keys and strings, and numbers of equal value, which the walker treats alike;
    a NaN anywhere makes them unequal), which then needs no second walk. Each DataFrame
    view's ``geo`` cells are checked as GeoJSON.
    """
    _check_text(text, path)
    python_view = _parse_embedded(text, node, spec, path)
    views: list[tuple[Any, _Path]] = [(python_view, (path, _PARSED))]
    if spec in (_FRAME, _SERIES):
        pandas_view = _parse_as_pandas(text, node, spec, path)
        if not _same_tree(pandas_view, python_view):
            views.insert(0, (pandas_view, (path, _PANDAS)))
    if spec is _FRAME:
        for view, view_path in views:
            for cell, relative in _geo_cells(view, node.get("orient")):
                _check_geojson(cell, _join(view_path, relative))
    return views


def _same_tree(a: Any, b: Any) -> bool:
    """``a == b`` for parsed JSON trees; ``False`` if they are too deep to compare."""
    try:
        return bool(a == b)
    except RecursionError:
        return False


def _check_tagged(node: dict[str, Any], path: _Path) -> list[tuple[Any, _Path]]:
    """Check one entry carrying ``_module``/``_class``; return its children to walk."""
    module, cls = node.get(_MODULE), node.get(_CLASS)
    if not (isinstance(module, str) and isinstance(cls, str)):
        raise _Refused(
            path,
            f"entry {_entry(node)} has an incomplete or non-string type tag; pandapower type "
            "tags need both '_module' and '_class' as strings",
        )
    spec = ALLOWED_TYPES.get((module, cls))
    if spec is None:
        raise _Refused(
            path, f"refused entry {_entry(node)}: {_why_refused(module, cls)}; {_ALLOWED_SUMMARY}"
        )
    if _OBJECT not in node:
        raise _Refused(path, f"entry {_entry(node)} has no '_object'")
    _check_extras(node, spec, path)

    obj: Any = node[_OBJECT]
    obj_path = (path, _OBJECT)
    if (isinstance(obj, bool) and spec is not _NP_SCALAR) or not isinstance(obj, spec.object_types):
        allowed = "/".join(t.__name__ for t in spec.object_types)
        raise _Refused(
            obj_path,
            f"_object of {_entry(node)} ({spec.kind}) must be {allowed}, got {type(obj).__name__}",
        )
    children: list[tuple[Any, _Path]] = [
        (value, (path, key)) for key, value in node.items() if key not in _TAG_KEYS
    ]
    if isinstance(obj, str) and spec.object_is_json:
        children += _embedded_views(obj, node, spec, obj_path)
    elif (
        spec is _SHAPELY and isinstance(obj, dict) and not _one_of(obj.get("type"), _GEOMETRY_TYPES)
    ):
        raise _Refused(
            (obj_path, "type"),
            f"geometry type {_short(obj.get('type'))} is not one of "
            f"{', '.join(sorted(_GEOMETRY_TYPES))}",
        )
    else:
        children.append((obj, obj_path))
    return children


_CONTAINERS = (dict, list)
_SCALARS = frozenset({int, float, bool, type(None)})  # JSON values with nothing to check
_JSON_STARTS = ("{", "[")


def _looks_like_json(text: str) -> bool:
    """``True`` if ``text`` may hold a JSON object or array."""
    head = text[:1]
    return head in _JSON_STARTS or (head.isspace() and text.lstrip()[:1] in _JSON_STARTS)


def _walk(root: Any) -> None:
    """Check every node of a parsed JSON tree (iteratively: no recursion limit).

    Every key and string is checked for lone surrogates and every key for reading as a type
    tag (:func:`_check_keys`); tagged entries are checked by :func:`_check_tagged`. As
    defense in depth, every string that holds a JSON object or array is parsed and inspected
    as well, whether or not pandapower would parse it.
    """
    stack: list[tuple[Any, _Path]] = [(root, None)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            _check_text(node, path)
            try:
                stack.append((_loads(node), (path, _PARSED)))
            except _DuplicateKey as exc:
                raise _Refused(path, _duplicate_message(exc.key)) from None
            except (ValueError, RecursionError):
                pass  # a plain string: neither json.loads nor pandapower's hook decodes it
        elif isinstance(node, dict):
            _check_keys(node, path)
            if _MODULE in node or _CLASS in node:
                stack.extend(_check_tagged(node, path))
            elif not _SCALARS.issuperset(map(type, node.values())):
                _push_children(stack, node.items(), path)
        elif isinstance(node, list) and not _SCALARS.issuperset(map(type, node)):
            _push_children(stack, enumerate(node), path)  # not only numbers (a fast path)


def _push_children(stack: list[tuple[Any, _Path]], items: Iterable[Any], path: _Path) -> None:
    """Push the containers and JSON-like strings among ``items``; check the other strings."""
    push = stack.append
    for key, value in items:
        if type(value) in _SCALARS:
            continue
        if isinstance(value, _CONTAINERS):
            push((value, (path, key)))
        elif isinstance(value, str):
            if _looks_like_json(value):
                push((value, (path, key)))
            elif not value.isascii():
                _check_text(value, (path, key))


def validate_pandapower_json(tree: Any, *, file: str | Path | None = None) -> None:
    """Check a parsed pandapower JSON document against the allow-list, without decoding it.

    Parameters
    ----------
    tree
        The document as returned by ``json.loads`` *without* object hook. Objects that
        repeat a key must be refused while parsing (a parsed tree keeps only the last value,
        while pandapower's hook acts on every one): :func:`load_pandapower_json` does so.
    file
        The file the document came from (named in error messages).

    Raises
    ------
    ConfigError
        When the top level is not a pandapower net entry, or any entry anywhere in the tree
        (also inside JSON texts nested in ``_object`` strings) names a type that is not in
        :data:`ALLOWED_TYPES`, carries keys pandapower would pass on as keyword arguments
        beyond the known ones, or a dtype/orient/CRS/GeoJSON type outside the known set; any
        key or string holds a lone surrogate, or a key reads as a type tag without being one;
        a table text pandas cannot parse. Any JSON value of any type or depth gives a
        ConfigError, never another exception. The message names the JSON path of the
        offending entry (``<json>`` marks a step into a nested JSON text, ``<pandas>`` the same
        text as pandas parses it).
    """
    if not isinstance(tree, dict):
        raise ConfigError(
            f"the JSON top level is {_json_type(tree)}; expected a pandapower net object "
            '{"_module": "pandapower.auxiliary", "_class": "pandapowerNet", "_object": {...}} '
            "as written by pandapower.to_json",
            file=file,
        )
    if (tree.get(_MODULE), tree.get(_CLASS)) != _NET_TAG:
        raise ConfigError(
            f"the JSON top level is not a pandapower net (found {_entry(tree)}); expected "
            '"_module": "pandapower.auxiliary", "_class": "pandapowerNet" as written by '
            "pandapower.to_json >= 2.1 (re-save older files with a trusted pandapower)",
            file=file,
        )
    try:
        _walk(tree)
    except _Refused as refused:
        raise ConfigError(refused.message, file=file, field=_render(refused.path)) from None


def _json_type(value: Any) -> str:
    """Name the JSON type of a parsed value."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _read_text(path: Path, max_bytes: int) -> str:
    """Read ``path`` as UTF-8 text with the size, pickle and encoding checks."""
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ConfigError(
            "pickle files are never loaded (unpickling runs code from the file); save the net "
            "with gridplan.grid.safe_json.save_pandapower_json or pandapower.to_json instead",
            file=path,
        )
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ConfigError("not a regular file; expected a pandapower JSON file", file=path)
        if size > max_bytes:
            raise ConfigError(
                f"file is {size / 1024**2:.0f} MiB, larger than the limit of "
                f"{max_bytes / 1024**2:.0f} MiB (max_bytes); is this really a feeder net?",
                file=path,
            )
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError("file not found; expected a pandapower JSON file", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if len(raw) > max_bytes:
        raise ConfigError(f"file grew beyond the limit of {max_bytes} bytes", file=path)
    if raw[:1] == b"\x80" and raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise ConfigError(
            "this is a pickle file, which is never loaded (unpickling runs code from the "
            "file); save the net with pandapower.to_json instead",
            file=path,
        )
    if raw[:2] == b"\x1f\x8b" or raw[:4] == b"PK\x03\x04":
        raise ConfigError(
            "this is a compressed (gzip/zip/Excel) file; expected a plain pandapower JSON file",
            file=path,
        )
    if not raw.strip():
        raise ConfigError("file is empty; expected a pandapower JSON net", file=path)
    bom = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"file is not UTF-8 text (invalid byte at offset {exc.start + bom}); expected a UTF-8 "
            "pandapower JSON file",
            file=path,
        ) from None


def _parse_document(text: str, file: str | Path | None) -> Any:
    """Parse a document's text for :func:`validate_pandapower_json` (repeated keys refused).

    Raises
    ------
    ConfigError
        Invalid JSON (with line and column), a repeated key in an object, or nesting too deep.
    """
    try:
        return _loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=file
        ) from None
    except _DuplicateKey as exc:
        raise ConfigError(_duplicate_message(exc.key), file=file) from None
    except RecursionError:
        raise ConfigError("JSON is nested too deeply to be a pandapower net", file=file) from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's 4300-digit limit
        raise ConfigError(f"invalid JSON: {_clip(str(exc), 120)}", file=file) from None


def load_pandapower_json(
    path: str | Path, *, check: bool = True, max_bytes: int = MAX_FILE_BYTES
) -> pandapowerNet:
    """Load a pandapower JSON net, refusing any file that would import or call code.

    The file is parsed as plain JSON, checked with :func:`validate_pandapower_json`, and only
    then decoded by ``pandapower.from_json_string(text, convert=True)`` -- the same decoding
    ``pandapower.from_json(path)`` applies, so an accepted file gives the same net.

    Parameters
    ----------
    path
        The ``.json`` file written by ``pandapower.to_json`` or :func:`save_pandapower_json`.
    check
        Also run :func:`check_net` on the decoded net (default ``True``).
    max_bytes
        Refuse files larger than this [bytes]; default :data:`MAX_FILE_BYTES` (500 MiB).

    Returns
    -------
    pandapowerNet
        The decoded net.

    Raises
    ------
    ConfigError
        The file is missing, a pickle, compressed, too large, empty, not UTF-8, not valid JSON
        (the message gives line and column), repeats a key in an object, not a pandapower
        net, holds an entry outside the
        allow-list (the message names the JSON path and the entry), cannot be decoded by
        pandapower, or (with ``check``) fails :func:`check_net`.
    """
    path = Path(path)
    text = _read_text(path, max_bytes)
    validate_pandapower_json(_parse_document(text, path), file=path)

    from pandapower.auxiliary import pandapowerNet
    from pandapower.file_io import from_json_string

    try:
        net = from_json_string(text, convert=True)
    except Exception as exc:  # pandapower raises many types on malformed-but-allowed data
        raise ConfigError(
            f"pandapower could not decode the net: {type(exc).__name__}: {_clip(str(exc), 200)}",
            file=path,
        ) from exc
    if not isinstance(net, pandapowerNet):
        raise ConfigError(f"decoding gave {type(net).__name__}, not a pandapower net", file=path)
    logger.debug("loaded pandapower net from %s", path)
    if check:
        check_net(net, file=path)
    return net


def save_pandapower_json(net: pandapowerNet, path: str | Path) -> Path:
    """Write ``net`` as pandapower JSON, atomically.

    The JSON text from ``pandapower.to_json`` is first checked with
    :func:`validate_pandapower_json`, so a net holding something :func:`load_pandapower_json`
    would refuse (a controller, say) is not written. The text goes to a temporary file in the
    destination folder, which then replaces ``path`` (``os.replace``): readers never see a
    half-written file.

    Parameters
    ----------
    net
        The net to save.
    path
        Destination ``.json`` file (its folder is created if missing).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ConfigError
        ``path`` has a pickle suffix, or the net holds an entry outside the allow-list (e.g.
        ``net.controller`` rows; remove them before saving).
    """
    from pandapower.file_io import to_json

    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ConfigError("gridplan writes JSON, never pickle; use a .json file name", file=path)
    text = to_json(net)
    try:
        validate_pandapower_json(_parse_document(text, path), file=path)
    except ConfigError as exc:
        raise ConfigError(
            f"not saved: the net holds data gridplan would refuse to load back ({exc.reason})",
            file=path,
            field=exc.field,
        ) from None
    return write_text(path, text)


# ---------------------------------------------------------------------------------------------
# Plausibility of the decoded net


def _list(labels: Any, limit: int = 10) -> str:
    """Format element indices for a message (at most ``limit`` shown)."""
    labels = list(labels)
    shown = ", ".join(str(x) for x in labels[:limit])
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return f"[{shown}]{more}"


def _table(net: Any, name: str, columns: tuple[str, ...], file: str | Path | None) -> Any:
    """Return ``net[name]`` as a DataFrame with ``columns``, or ``None`` if absent/empty."""
    import pandas as pd

    table = net.get(name) if hasattr(net, "get") else None
    if table is None:
        return None
    if not isinstance(table, pd.DataFrame):
        raise ConfigError(
            f"'{name}' is a {type(table).__name__}, expected a table (DataFrame)",
            file=file,
            field=name,
        )
    if len(table) == 0:
        return None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"table '{name}' lacks column(s) {missing}", file=file, field=name)
    return table


def _as_float(value: Any) -> float:
    """``float(value)`` for numbers, NaN for anything else (strings, booleans, None, objects)."""
    if value is None or isinstance(value, bool | str | bytes):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _bad_rows(table: Any, column: str, *, positive: bool) -> list[Any]:
    """Index labels whose ``column`` is non-numeric or non-finite (or, if ``positive``, <= 0)."""
    import numpy as np

    values = np.array([_as_float(v) for v in table[column]], dtype=float)
    bad = ~np.isfinite(values)
    if positive:
        with np.errstate(invalid="ignore"):
            bad |= values <= 0
    return list(table.index[bad])


def check_net(net: Any, *, file: str | Path | None = None) -> None:
    """Check that a decoded net is a usable feeder; raise on the first problem found.

    Checks, in this order: the object is a ``pandapowerNet``; it has buses; it has an
    in-service external grid (``ext_grid``) on an existing bus; ``load`` and ``sgen``
    ``p_mw``/``q_mvar`` are finite numbers; line ``length_km`` and ``max_i_ka`` and
    transformer ``sn_mva`` are finite and > 0; every in-service bus is connected to an
    in-service external grid through in-service branches and closed switches
    (``pandapower.topology.create_nxgraph(net, respect_switches=True)``). All rows are
    checked, in service or not, except for the connectivity check.

    Parameters
    ----------
    net
        The decoded net.
    file
        The file the net came from (named in error messages).

    Raises
    ------
    ConfigError
        Naming the table/column and the offending element indices (and bus names for
        isolated buses), e.g. "feeder has no external grid".
    """
    from pandapower.auxiliary import pandapowerNet

    if not isinstance(net, pandapowerNet):
        raise ConfigError(f"expected a pandapower net, got {type(net).__name__}", file=file)
    try:
        _check_net(net, file)
    except GridplanError:
        raise
    except Exception as exc:  # malformed tables (any content pandapower accepted) fail oddly
        raise ConfigError(
            f"net failed the plausibility checks: {type(exc).__name__}: {_clip(str(exc), 200)}",
            file=file,
        ) from exc


def _check_net(net: pandapowerNet, file: str | Path | None) -> None:
    """Body of :func:`check_net` for a ``pandapowerNet``."""
    bus = _table(net, "bus", ("in_service",), file)
    if bus is None:
        raise ConfigError("feeder has no buses", file=file, field="bus")
    ext_grid = _table(net, "ext_grid", ("bus", "in_service"), file)
    if ext_grid is None:
        raise ConfigError(
            "feeder has no external grid; add one at the feeder head (pandapower.create_ext_grid)",
            file=file,
            field="ext_grid",
        )
    in_service = ext_grid[ext_grid["in_service"].astype(bool)]
    if len(in_service) == 0:
        raise ConfigError(
            "feeder has no in-service external grid", file=file, field="ext_grid.in_service"
        )
    unknown = sorted(set(ext_grid["bus"]) - set(bus.index), key=str)
    if unknown:
        raise ConfigError(
            f"ext_grid connects to bus(es) {_list(unknown)} that are not in the bus table",
            file=file,
            field="ext_grid.bus",
        )

    for name, column, positive, unit in (
        ("load", "p_mw", False, "MW"),
        ("load", "q_mvar", False, "Mvar"),
        ("sgen", "p_mw", False, "MW"),
        ("sgen", "q_mvar", False, "Mvar"),
        ("line", "length_km", True, "km"),
        ("line", "max_i_ka", True, "kA"),
        ("trafo", "sn_mva", True, "MVA"),
    ):
        table = _table(net, name, (column,), file)
        if table is None:
            continue
        bad = _bad_rows(table, column, positive=positive)
        if bad:
            expected = "finite numbers > 0" if positive else "finite numbers"
            raise ConfigError(
                f"{name} {_list(bad)} have invalid {column} (NaN, inf, non-numeric"
                f"{', zero or negative' if positive else ''}); expected {expected} [{unit}]",
                file=file,
                field=f"{name}.{column}",
            )

    import networkx as nx
    import pandapower.topology as top

    try:
        graph = top.create_nxgraph(net, respect_switches=True)
        sources = set(in_service["bus"])
        supplied: set[Any] = set()
        for component in nx.connected_components(graph):
            if component & sources:
                supplied |= component
    except Exception as exc:  # malformed branch tables make pandapower fail in many ways
        raise ConfigError(
            f"cannot build the network graph: {type(exc).__name__}: {_clip(str(exc), 200)}",
            file=file,
        ) from exc
    live = bus.index[bus["in_service"].astype(bool)]
    isolated = [b for b in live if b not in supplied]
    if isolated:
        names = bus["name"] if "name" in bus.columns else None
        shown = [
            f"{b} ({names[b]})" if names is not None and isinstance(names[b], str) else str(b)
            for b in isolated
        ]
        raise ConfigError(
            f"bus(es) {_list(shown)} are in service but not connected to any in-service "
            "external grid (check open switches and out-of-service lines/transformers)",
            file=file,
            field="bus",
        )

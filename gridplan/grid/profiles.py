"""Profiles that are read row by row: (time, element) power without the full matrix.

A SimBench grid's year is a few dozen relative profiles (time, profile) and one nominal
power per element: ``simbench.get_absolute_values`` multiplies them out into (time,
element) frames, about 8 GB for the 9,099-bus ``1-MVLV-semiurb-all-0-sw``.
:class:`ProfileMatrix` keeps the factors instead and computes the rows asked for, so a
study's memory is bounded by a chunk of steps, not by (time × every load). Small feeders
and read-in tables keep their dense arrays in the same class (one code path).

The value of element ``j`` at step ``t`` is::

    basis[t, column[j]] * scale[j] * unit * factor  +  sum of the added columns

(dense: ``basis[t, j] * factor``). The multiplication order is that of the dense arrays it
replaces, so the values are the same to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["AddedColumns", "ProfileMatrix"]


@dataclass(frozen=True, eq=False)
class AddedColumns:
    """Power added to some columns of a :class:`ProfileMatrix` [kW or kvar].

    Attributes
    ----------
    columns
        Element positions the values add to, (m,) int, unique.
    values
        Added power, shape (time, m): an array, or a sparse CSR array for power that is
        mostly zero (EV charging: a few hours a day per home).
    """

    columns: np.ndarray
    values: Any

    def __post_init__(self) -> None:
        columns = np.asarray(self.columns, dtype=np.int64)
        values = sp.csr_array(self.values) if sp.issparse(self.values) else np.asarray(self.values)
        if values.ndim != 2 or values.shape[1] != columns.size:
            raise ValueError(
                f"added values must have shape (time, {columns.size}); got {values.shape}"
            )
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "values", values)

    def rows(self, rows: Any) -> np.ndarray:
        """The added values at ``rows``, dense, shape (rows, m)."""
        part = self.values[rows]
        return part.toarray() if sp.issparse(part) else np.asarray(part)

    @property
    def nbytes(self) -> int:
        """Memory held [bytes]."""
        v = self.values
        held = v.data.nbytes + v.indices.nbytes + v.indptr.nbytes if sp.issparse(v) else v.nbytes
        return int(held + self.columns.nbytes)

    def column_sums(self) -> np.ndarray:
        """Sum over time of each added column, (m,)."""
        return np.asarray(self.values.sum(axis=0), dtype=np.float64).ravel()

    def is_finite(self) -> bool:
        """Every added value is finite."""
        v = self.values
        return bool(np.isfinite(v.data if sp.issparse(v) else v).all())


@dataclass(frozen=True, eq=False)
class ProfileMatrix:
    """A (time, element) profile [kW or kvar], computed row by row from its factors.

    Row-sliceable like an array (``shape``, ``len``, ``m[rows]``, ``m[rows, cols]``):
    :func:`gridplan.powerflow.iter_timeseries` reads it one chunk at a time. Indexing,
    :meth:`to_array` and ``numpy.asarray(m)`` return float64 arrays.

    Attributes
    ----------
    basis
        Basis profiles, shape (time, k): the dense values themselves when ``column`` is
        ``None``, else relative profiles shared by several elements.
    column
        Basis column of each element, (element,) int, or ``None`` (dense: ``k`` elements).
    scale
        Nominal power of each element, (element,) [kW or kvar, times ``1 / unit``], or
        ``None`` (1).
    unit
        Unit conversion applied after ``scale`` (e.g. 1e3 from MW to kW).
    factor
        Growth factor applied to every element [-].
    added
        Power added to some elements after the factor (e.g. EV charging per home load).
    """

    basis: np.ndarray
    column: np.ndarray | None = None
    scale: np.ndarray | None = None
    unit: float = 1.0
    factor: float = 1.0
    added: tuple[AddedColumns, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        basis = np.asarray(self.basis)
        if basis.ndim != 2:
            raise ValueError(f"profile basis must be 2-D (time, profile); got {basis.shape}")
        object.__setattr__(self, "basis", basis)
        if self.column is not None:
            column = np.asarray(self.column, dtype=np.int64)
            scale = np.ones(column.size) if self.scale is None else np.asarray(self.scale, float)
            if scale.shape != column.shape:
                raise ValueError("one scale per element is needed")
            if column.size and (column.min() < 0 or column.max() >= basis.shape[1]):
                raise ValueError("element column outside the basis")
            object.__setattr__(self, "column", column)
            object.__setattr__(self, "scale", scale)
        elif self.scale is not None:
            raise ValueError("a dense profile has no per-element scale")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def dense(cls, values: np.ndarray) -> ProfileMatrix:
        """Wrap a dense (time, element) array (no copy)."""
        return cls(np.asarray(values))

    @classmethod
    def of(cls, values: np.ndarray | ProfileMatrix) -> ProfileMatrix:
        """``values`` itself if a :class:`ProfileMatrix`, else :meth:`dense`."""
        return values if isinstance(values, ProfileMatrix) else cls.dense(values)

    @classmethod
    def factored(
        cls, relative: np.ndarray, column: np.ndarray, scale: np.ndarray, unit: float = 1.0
    ) -> ProfileMatrix:
        """Elements that follow shared relative profiles: ``relative[:, column[j]] ×
        scale[j] × unit``."""
        return cls(np.asarray(relative), np.asarray(column), np.asarray(scale, float), unit)

    # ------------------------------------------------------------------ array protocol
    @property
    def shape(self) -> tuple[int, int]:
        """(time, element)."""
        n = self.basis.shape[1] if self.column is None else self.column.size
        return (self.basis.shape[0], n)

    @property
    def ndim(self) -> int:
        """Always 2."""
        return 2

    @property
    def dtype(self) -> np.dtype:
        """float64: the dtype of every row this returns."""
        return np.dtype(np.float64)

    @property
    def nbytes(self) -> int:
        """Memory held [bytes] (the factors and added columns, not the product)."""
        held = self.basis.nbytes + sum(a.nbytes for a in self.added)
        if self.column is not None and self.scale is not None:
            held += self.column.nbytes + self.scale.nbytes
        return int(held)

    @property
    def is_dense(self) -> bool:
        """The basis holds every element's values (no shared profiles)."""
        return self.column is None

    def __len__(self) -> int:
        return int(self.basis.shape[0])

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        return self.rows(rows, cols)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.to_array()
        return out if dtype is None else out.astype(dtype, copy=False)

    def to_array(self) -> np.ndarray:
        """The whole (time, element) matrix, float64 (``time × element × 8`` bytes): a
        dense float64 profile's own array (read-only once :meth:`freeze` ran), else a new
        one."""
        plain = self.column is None and self.factor == 1.0 and not self.added
        if plain and self.basis.dtype == np.float64:
            return self.basis
        return self.rows(slice(None))

    def rows(self, rows: Any, cols: Any = slice(None)) -> np.ndarray:
        """Values at ``rows`` (slice, int array or boolean mask) and ``cols`` [kW or kvar],
        float64, shape (rows, cols); a scalar index drops its axis as numpy does."""
        squeeze_row = np.ndim(rows) == 0 and not isinstance(rows, slice)
        squeeze_col = np.ndim(cols) == 0 and not isinstance(cols, slice)
        rows = np.atleast_1d(rows) if squeeze_row else rows
        cols = np.atleast_1d(cols) if squeeze_col else cols
        part = self.basis[rows]
        if self.column is None:
            out = np.asarray(part[:, cols], dtype=np.float64)
            if np.may_share_memory(out, self.basis):  # a view (slice rows): copy once
                out = out.copy()
        else:
            assert self.scale is not None
            out = np.asarray(part[:, self.column[cols]], dtype=np.float64) * self.scale[cols]
            if self.unit != 1.0:
                out *= self.unit
        if self.factor != 1.0:
            out *= self.factor
        for add in self.added:
            self._add(out, add, rows, cols)
        if squeeze_row:
            out = out[0]
        if squeeze_col:
            out = out[..., 0]
        return out

    def _add(self, out: np.ndarray, add: AddedColumns, rows: Any, cols: Any) -> None:
        if isinstance(cols, slice) and cols == slice(None):
            out[:, add.columns] += add.rows(rows)
            return
        positions = np.arange(self.shape[1])[cols]
        where = np.full(self.shape[1], -1, dtype=np.int64)
        where[positions] = np.arange(positions.size)
        target = where[add.columns]
        keep = target >= 0
        out[:, target[keep]] += add.rows(rows)[:, keep]

    # ------------------------------------------------------------------ derived
    def take(self, rows: Any) -> ProfileMatrix:
        """The same elements at ``rows`` only (the basis and added values are sliced)."""
        return ProfileMatrix(
            self.basis[rows],
            self.column,
            self.scale,
            self.unit,
            self.factor,
            tuple(AddedColumns(a.columns, a.values[rows]) for a in self.added),
        )

    def scaled(self, factor: float) -> ProfileMatrix:
        """Every element times ``factor`` (added columns are kept as they are; scale
        before adding)."""
        if self.added:
            raise ValueError("scale a profile before adding columns to it")
        return ProfileMatrix(
            self.basis, self.column, self.scale, self.unit, self.factor * float(factor)
        )

    def plus(self, columns: np.ndarray, values: np.ndarray) -> ProfileMatrix:
        """This profile with ``values`` (time, m) added to elements ``columns`` (m,)."""
        add = AddedColumns(columns, values)
        if add.values.shape[0] != len(self):
            raise ValueError(f"added values need {len(self)} rows; got {add.values.shape[0]}")
        return ProfileMatrix(
            self.basis, self.column, self.scale, self.unit, self.factor, (*self.added, add)
        )

    def matmul(self, weights: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
        """``self @ weights`` for weights of shape (element, g) [same unit × weight],
        shape (time, g), without forming the (time, element) matrix: through the basis
        when it is shared, else ``chunk`` rows at a time."""
        weights = np.asarray(weights, dtype=float)
        if weights.ndim != 2 or weights.shape[0] != self.shape[1]:
            raise ValueError(f"weights must have shape ({self.shape[1]}, g); got {weights.shape}")
        if self.column is None:
            out = np.empty((len(self), weights.shape[1]))
            for start in range(0, len(self), chunk):
                stop = min(start + chunk, len(self))
                out[start:stop] = self.rows(slice(start, stop)) @ weights
            return out
        assert self.scale is not None
        per_basis = np.zeros((self.basis.shape[1], weights.shape[1]))
        np.add.at(per_basis, self.column, weights * (self.scale * self.unit)[:, None])
        out = np.asarray(self.basis, dtype=np.float64) @ per_basis
        out *= self.factor
        for add in self.added:
            out += np.asarray(add.values @ weights[add.columns])
        return out

    def total(self) -> np.ndarray:
        """Sum over elements per step [kW or kvar], shape (time,)."""
        return self.matmul(np.ones((self.shape[1], 1)))[:, 0]

    def sum(self, axis: int | None = None) -> Any:
        """Sum over ``axis`` (1: per step, as :meth:`total`; 0: per element over time;
        ``None``: everything) [kW or kvar summed over steps or elements]."""
        if axis == 1 or axis == -1:
            return self.total()
        if axis == 0:
            if self.column is None:
                out = self.basis.sum(axis=0, dtype=np.float64) * self.factor
            else:
                assert self.scale is not None
                out = self.basis.sum(axis=0, dtype=np.float64)[self.column] * self.scale
                out = out * self.unit * self.factor
            for add in self.added:
                out[add.columns] += add.column_sums()
            return out
        if axis is None:
            return float(self.total().sum())
        raise ValueError(f"axis must be 0, 1 or None; got {axis}")

    def is_finite(self) -> bool:
        """Every value is finite (checked on the factors)."""
        parts: Sequence[np.ndarray] = [self.basis]
        if self.scale is not None:
            parts = [*parts, self.scale]
        return all(bool(np.isfinite(p).all()) for p in parts) and all(
            a.is_finite() for a in self.added
        )

    def freeze(self) -> None:
        """Make the held arrays read-only (a cached feeder shares them between callers)."""
        for array in (self.basis, self.column, self.scale):
            if isinstance(array, np.ndarray):
                array.flags.writeable = False

"""The per-load EV power of a dispatch, written row by row: dense, or sparse as it fills.

A year of a big fleet's per-load power (35,136 steps × 3,000 homes) is 400 MB even as
float32, though an EV charges a few hours a day. :class:`LoadRows` takes the rows as the
dispatch writes them and, when ``sparse``, turns each finished block of rows into a sparse
CSR block, so that the dense year is never held.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["LoadRows"]


class LoadRows:
    """A (row, column) array written row by row (rows in any order inside the pending
    block, blocks in order).

    Parameters
    ----------
    n_rows, n_cols
        Shape of the whole array.
    dtype
        Its float type.
    sparse
        Keep finished rows as CSR blocks (:meth:`flush`) instead of one dense array.
    block
        Rows the writer may hold pending before they are flushed automatically [-].
    """

    def __init__(
        self, n_rows: int, n_cols: int, dtype: Any, *, sparse: bool, block: int = 1024
    ) -> None:
        self.shape = (int(n_rows), int(n_cols))
        self.dtype = np.dtype(dtype)
        self.sparse = sparse
        self.block = int(block)
        self._dense = None if sparse else np.zeros(self.shape, self.dtype)
        self._done: list[sp.csr_array] = []
        self._start = 0  # first row not yet flushed
        self._pending = np.zeros((0, self.shape[1]), self.dtype)

    def _rows(self, stop: int) -> np.ndarray:
        """The pending buffer, grown to hold rows up to ``stop``."""
        need = stop - self._start
        if need > self._pending.shape[0]:
            grown = np.zeros((max(need, self.block), self.shape[1]), self.dtype)
            grown[: self._pending.shape[0]] = self._pending
            self._pending = grown
        return self._pending

    def __setitem__(self, key: int | slice, value: Any) -> None:
        if self._dense is not None:
            self._dense[key] = value
            return
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step != 1:
                raise ValueError("LoadRows takes contiguous row slices")
        else:
            start, stop = int(key), int(key) + 1
        if start < self._start:
            raise ValueError(f"row {start} was already flushed (rows go in order)")
        if stop - self._start > max(self.block, self._pending.shape[0]):
            self.flush(start)
        buf = self._rows(stop)
        buf[start - self._start : stop - self._start] = value

    def flush(self, upto: int) -> None:
        """Turn the rows before ``upto`` into a sparse block (sparse only; rows before
        ``upto`` may not be written after)."""
        if self._dense is not None or upto <= self._start:
            return
        n = upto - self._start
        part = self._rows(upto)[:n]
        self._done.append(sp.csr_array(part))
        self._pending = self._pending[n:].copy()
        self._start = upto

    def finish(self) -> np.ndarray | sp.csr_array:
        """The whole array: dense, or one CSR array of every block."""
        if self._dense is not None:
            return self._dense
        self.flush(self.shape[0])
        if not self._done:
            return sp.csr_array(self.shape, dtype=self.dtype)
        return sp.csr_array(sp.vstack(self._done, format="csr"))

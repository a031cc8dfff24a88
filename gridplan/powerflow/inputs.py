"""The inputs of a solve: (time × element) arrays of kW / kvar, and their node injections.

:class:`Input` wraps one input (an in-memory array, or any row-sliceable array such as a
``numpy.memmap``, read chunk by chunk), or stands for the net's constant values when it is
not given. :func:`load_plan` prepares, once per call, how a chunk of input rows becomes the
conjugate complex power ``conj(S_inj)`` injected at each non-slack node [pu], and
:func:`chunk_load` does it for one chunk (column gathers on the float view, no sparse
product per chunk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from gridplan.core.errors import ConfigError
from gridplan.powerflow import kernels
from gridplan.powerflow.arraytypes import ComplexArray, FloatArray, IntArray
from gridplan.powerflow.model import CompiledNetwork

__all__ = ["Input", "LoadPlan", "chunk_load", "load_plan", "read_inputs"]


class Input:
    """One (time × element) input: a row-sliceable array or the net's constant values."""

    def __init__(
        self, name: str, data: Any, n_el: int, default: FloatArray, n_steps: int | None
    ) -> None:
        self.name = name
        self.default = default
        self.checked = False
        if data is None:
            self.data = None
            return
        if not hasattr(data, "shape") or not hasattr(data, "__getitem__"):
            data = np.asarray(data, dtype=np.float64)
        shape = tuple(data.shape)
        if len(shape) != 2 or shape[1] != n_el:
            raise ConfigError(
                f"expected a 2-D (time, element) array with {n_el} columns "
                f"(one per row of the net's table, in index order), got shape {shape}; "
                "stack Monte Carlo draws along the time axis",
                field=name,
            )
        if n_steps is not None and shape[0] != n_steps:
            raise ConfigError(f"has {shape[0]} time steps, load_p_kw has {n_steps}", field=name)
        self.data = data

    def rows(self, start: int, stop: int) -> FloatArray:
        """Rows ``start:stop`` as given [kW / kvar], checked to be finite."""
        assert self.data is not None
        rows = np.asarray(self.data[start:stop], dtype=np.float64)
        if not self.checked:
            self._check(rows, start)
        return rows

    def _check(self, rows: FloatArray, start: int) -> None:
        if not np.isfinite(rows).all():
            bad = np.argwhere(~np.isfinite(rows))[0]
            raise ConfigError(
                f"non-finite value at step {start + int(bad[0])}, "
                f"column {int(bad[1])}; expected finite kW / kvar",
                field=self.name,
            )

    def check_all(self) -> None:
        """Validate the whole array up front when it is an in-memory numpy array."""
        if isinstance(self.data, np.ndarray) and not isinstance(self.data, np.memmap):
            self._check(self.data, 0)
            self.checked = True


def read_inputs(
    cn: CompiledNetwork,
    load_p_kw: Any,
    load_q_kvar: Any,
    sgen_p_kw: Any,
    sgen_q_kvar: Any,
) -> tuple[int, list[Input]]:
    """``(n_steps, inputs)``: the four inputs of a call as :class:`Input`, in the order
    load P, load Q, sgen P, sgen Q, with their shapes checked (not yet their values)."""
    if load_p_kw is None:
        raise ConfigError(
            "load_p_kw is required (it sets the number of time steps); pass "
            "np.zeros((n_steps, 0)) for a net without loads",
            field="load_p_kw",
        )
    first = Input("load_p_kw", load_p_kw, cn.n_load, cn.load_p_mw, None)
    assert first.data is not None
    n_steps = int(first.data.shape[0])
    items = [
        first,
        Input("load_q_kvar", load_q_kvar, cn.n_load, cn.load_q_mvar, n_steps),
        Input("sgen_p_kw", sgen_p_kw, cn.n_sgen, cn.sgen_p_mw, n_steps),
        Input("sgen_q_kvar", sgen_q_kvar, cn.n_sgen, cn.sgen_q_mvar, n_steps),
    ]
    return n_steps, items


@dataclass(frozen=True)
class LoadPlan:
    """How the (time × element) inputs become ``conj(S_inj)`` of a chunk's steps.

    The work is done on the float view of the (step, non-slack node) complex array, two
    float columns (real, imaginary) per node. The given inputs are scaled (kW / kvar to
    pu, with the sign they take in ``conj(S_inj)``) into the columns of one buffer that
    ends in a zero column; the result is ``const`` plus, per layer, one column gather of
    that buffer (``layers[r][c]``: the buffer column of the r-th element that adds to
    float column ``c``, or the zero column).
    """

    const: FloatArray  # (2 n_l,): constant part, re/im interleaved [pu]
    given: tuple[tuple[int, int, float], ...]  # (input number, buffer offset, factor)
    width: int  # buffer columns, including the final zero column
    layers: tuple[IntArray, ...]  # full-width gathers
    sparse_layers: tuple[tuple[IntArray, IntArray], ...]  # (float columns, buffer columns)
    # per given input: (float columns, input columns) of its elements (the numba scatter)
    scatter: tuple[tuple[IntArray, IntArray], ...] = ()


def load_plan(cn: CompiledNetwork, inputs: list[Input]) -> LoadPlan:
    """The :class:`LoadPlan` of the inputs (elements at slack nodes are dropped: they
    change no voltage)."""
    n_l = int(cn.nonslack.size)
    s_const = cn.s_fixed_mva[:n_l].copy()  # load convention [MVA]
    targets: list[IntArray] = []
    sources: list[IntArray] = []
    given: list[tuple[int, int, float]] = []
    scatter: list[tuple[IntArray, IntArray]] = []
    offset = 0
    for k, (inp, c, sign, part) in enumerate(
        zip(
            inputs,
            (cn.c_load, cn.c_load, cn.c_sgen, cn.c_sgen),
            (1.0, 1.0, -1.0, -1.0),
            (0, 1, 0, 1),
            strict=True,
        )
    ):
        if inp.data is None:
            contrib = (c @ inp.default)[:n_l] * sign
            s_const += contrib if part == 0 else 1j * contrib
            continue
        coo = sp.coo_matrix(c)
        keep = coo.row < n_l
        # conj(S_inj) = conj(-S_load) = -P + jQ: P enters negated, Q as it is
        factor = sign * (-1.0 if part == 0 else 1.0) * 1e-3 / cn.base_mva
        targets.append(2 * coo.row[keep].astype(np.int64) + part)
        sources.append(offset + coo.col[keep].astype(np.int64))
        scatter.append((targets[-1], coo.col[keep].astype(np.int64)))
        given.append((k, offset, factor))
        offset += int(c.shape[1])
    const = np.empty(2 * n_l)
    const[0::2] = -s_const.real / cn.base_mva
    const[1::2] = s_const.imag / cn.base_mva
    zero = offset
    layers: list[IntArray] = []
    sparse_layers: list[tuple[IntArray, IntArray]] = []
    if given:
        tgt = np.concatenate(targets)
        src = np.concatenate(sources)
        by_target = np.argsort(tgt, kind="stable")
        tgt, src = tgt[by_target], src[by_target]
        _, starts, counts = np.unique(tgt, return_index=True, return_counts=True)
        rank = np.arange(tgt.size) - np.repeat(starts, counts)
        for r in range(int(rank.max(initial=-1)) + 1):
            mine = rank == r
            # the first layer always, and layers that fill much of the width, as one
            # full-width gather; the rest (a few nodes with several elements) by column
            if r == 0 or mine.sum() > 0.3 * 2 * n_l:
                idx = np.full(2 * n_l, zero, dtype=np.int64)
                idx[tgt[mine]] = src[mine]
                layers.append(idx)
            else:
                sparse_layers.append((tgt[mine], src[mine]))
    return LoadPlan(
        const=const,
        given=tuple(given),
        width=offset + 1,
        layers=tuple(layers),
        sparse_layers=tuple(sparse_layers),
        scatter=tuple(scatter),
    )


def chunk_load(
    plan: LoadPlan, inputs: list[Input], n_l: int, start: int, stop: int
) -> ComplexArray:
    """``conj(S_inj)`` per non-slack node [pu], shape (steps, nonslack)."""
    m = stop - start
    sc = np.empty((m, n_l), dtype=np.complex128)
    sc_f = sc.view(np.float64)
    if kernels.enabled():
        # one pass per input, adding each element into its node's row (no gather buffer)
        sc_f[:] = plan.const
        for (k, _, factor), (cols, src) in zip(plan.given, plan.scatter, strict=True):
            kernels.scatter_add(inputs[k].rows(start, stop), src, cols, factor, sc_f)
        return sc
    if not plan.layers:
        sc_f[:] = plan.const
        for k, _, _ in plan.given:  # inputs whose elements all sit at slack nodes
            inputs[k].rows(start, stop)  # still read and checked
        return sc
    buf = np.empty((m, plan.width))
    buf[:, -1] = 0.0
    for k, offset, factor in plan.given:
        x = inputs[k].rows(start, stop)
        np.multiply(x, factor, out=buf[:, offset : offset + x.shape[1]])
    np.take(buf, plan.layers[0], axis=1, out=sc_f, mode="clip")
    sc_f += plan.const
    if len(plan.layers) > 1:
        tmp = np.empty_like(sc_f)
        for idx in plan.layers[1:]:
            np.take(buf, idx, axis=1, out=tmp, mode="clip")
            sc_f += tmp
    for cols, src in plan.sparse_layers:
        sc_f[:, cols] += np.take(buf, src, axis=1, mode="clip")
    return sc

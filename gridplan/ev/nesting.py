"""Nesting of monitored assets over the EVs, and the allocations across it: relief of
over-limit assets bottom-up (:func:`relieve`) and charging fitted into headroom
(:func:`fit_into_headroom`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gridplan.ev.options import TOLERANCE

__all__ = ["AssetNesting", "NestingLevel", "fit_into_headroom", "relieve"]


@dataclass(frozen=True)
class NestingLevel:
    """EVs under the assets of one nesting level (assets of a level never share an EV)."""

    ev: np.ndarray  # EV indices under an asset of this level
    asset: np.ndarray  # that asset, per EV in ``ev``


class AssetNesting:
    """Nesting of the monitored assets over the EVs, for allocation bottom-up/top-down.

    Parameters
    ----------
    ev_assets
        Whether each EV is downstream of each asset, (ev, asset), bool.

    Attributes
    ----------
    n_asset
        Number of assets.
    asset_from_ev
        (asset, ev) sparse incidence: EV power [kW] to asset load [kW].
    asset_level
        Level of each asset (0: smallest; -1: no EV below), (asset,).
    levels
        The EVs under each level's assets, bottom-up.
    leaf
        The smallest asset above each EV (-1: none), (ev,).
    leaf_column
        ``leaf`` with ``n_asset`` for EVs under none (a column past the assets), (ev,).
    ancestors
        ``ancestors[a, b]``: every EV under asset ``a`` is under asset ``b``, (asset, asset).
    nested
        Whether an EV's assets are exactly its leaf and the leaf's ancestors.
    """

    def __init__(self, ev_assets: np.ndarray) -> None:
        n_ev, n_asset = ev_assets.shape
        self.n_asset = n_asset
        inc = sp.csr_matrix(ev_assets.astype(float))
        self.asset_from_ev = inc.T.tocsr()
        count = np.asarray(ev_assets.sum(axis=0)).ravel()
        overlap = (self.asset_from_ev @ inc).toarray() > 0  # assets sharing an EV
        order = np.lexsort((np.arange(n_asset), count))
        level = np.full(n_asset, -1)
        for a in order:
            if count[a] == 0:
                continue
            level[a] = 1 + int(level[overlap[a] & (level >= 0)].max(initial=-1))
        self.asset_level = level
        self.levels: list[NestingLevel] = []
        for lv in range(int(level.max(initial=-1)) + 1):
            cols = np.flatnonzero(level == lv)
            sub = ev_assets[:, cols]
            has = sub.any(axis=1)
            self.levels.append(NestingLevel(np.flatnonzero(has), cols[np.argmax(sub[has], axis=1)]))
        # leaf: the smallest asset above each EV (first level that holds it)
        self.leaf = np.full(n_ev, -1, dtype=np.int64)
        for lvl in reversed(self.levels):
            self.leaf[lvl.ev] = lvl.asset
        # ancestors: asset a's EVs all lie under asset b
        contain = (self.asset_from_ev @ inc).toarray()
        self.ancestors = (contain >= count[:, None] - 0.5) & (count[:, None] > 0)
        # nested assets: an EV's assets are its leaf and the leaf's ancestors, so asset
        # loads follow from per-leaf sums (cheaper than the full EV x asset product)
        self.leaf_column = np.where(self.leaf >= 0, self.leaf, n_asset)
        has = self.leaf >= 0
        self.nested = bool(
            (ev_assets[has] == self.ancestors[self.leaf[has]]).all() and not ev_assets[~has].any()
        )
        self._asset_from_leaf = sp.csr_matrix(self.ancestors.T.astype(float))  # (asset, leaf)

    def asset_power(self, power_kw: np.ndarray) -> np.ndarray:
        """EV power through each asset [kW], (asset,), from per-EV power [kW], (ev,)."""
        if self.nested:
            n_asset = self.n_asset
            per_leaf = np.bincount(self.leaf_column, power_kw, minlength=n_asset + 1)[:n_asset]
            return np.asarray(self._asset_from_leaf @ per_leaf)
        return np.asarray(self.asset_from_ev @ power_kw)

    def levels_for(self, ix: np.ndarray) -> list[np.ndarray]:
        """Per level, the asset above each EV of ``ix`` (-1: none), bottom-up."""
        out = []
        for lvl in self.levels:
            amap = np.full(self.leaf.size, -1, dtype=np.int64)
            amap[lvl.ev] = lvl.asset
            out.append(amap[ix])
        return out


def relieve(
    levels: list[np.ndarray], n_asset: int, excess_kw: np.ndarray, flex_kw: np.ndarray
) -> np.ndarray:
    """Per-EV relief [kW] covering each asset's ``excess_kw`` bottom-up, within ``flex_kw``.

    Level by level from the smallest assets up, each asset asks its EVs for the excess not
    yet covered by relief below it, in proportion to their remaining room. ``levels`` maps
    each EV to its asset at each level (-1: none).
    """
    delta = np.zeros_like(flex_kw)
    nz = np.flatnonzero(flex_kw > TOLERANCE)
    if not nz.size:
        return delta
    f = flex_kw[nz]
    d = np.zeros(nz.size)
    for amap in levels:
        a = amap[nz]
        m = a >= 0
        if not m.any():
            continue
        am = a[m]
        if excess_kw[am].max() <= 0:
            continue
        dm, fm = d[m], f[m]
        provided = np.bincount(am, dm, minlength=n_asset)
        room = np.bincount(am, fm - dm, minlength=n_asset)
        short = np.maximum(excess_kw - provided, 0.0)
        ratio = np.divide(short, room, out=np.zeros(n_asset), where=room > TOLERANCE)
        np.minimum(ratio, 1.0, out=ratio)
        d[m] = dm + ratio[am] * (fm - dm)
    delta[nz] = d
    return delta


def fit_into_headroom(
    levels: list[np.ndarray], n_asset: int, want_kw: np.ndarray, headroom_kw: np.ndarray
) -> np.ndarray:
    """Scale ``want_kw`` down so that no asset takes more than its ``headroom_kw``."""
    out = np.zeros_like(want_kw)
    nz = np.flatnonzero(want_kw > 0)
    if not nz.size:
        return out
    x = want_kw[nz]
    room = np.maximum(headroom_kw, 0.0)
    for amap in reversed(levels):
        a = amap[nz]
        m = a >= 0
        if not m.any():
            continue
        am = a[m]
        total = np.bincount(am, x[m], minlength=n_asset)
        over = total > room
        if not over.any():
            continue
        ratio = np.divide(room, total, out=np.ones(n_asset), where=over)
        x[m] *= ratio[am]
    out[nz] = x
    return out

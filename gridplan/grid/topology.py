"""Topology of a feeder: which buses each monitored asset feeds, where the customers are."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gridplan.grid.feeders import Feeder

__all__ = ["downstream_buses", "downstream_of", "service_bus_positions"]


@lru_cache(maxsize=16)
def downstream_buses(feeder: Feeder) -> dict[str, np.ndarray]:
    """Buses fed through each monitored asset (the side cut off from the external grid).

    For each asset the network graph (pandapower topology: closed switches, in-service
    elements) is cut at that asset; the buses that lose every path to an external grid are
    downstream of it. In a meshed or ring-closed network an asset may have no downstream
    buses (another path feeds them).

    Returns
    -------
    dict
        ``asset_id`` -> sorted array of bus indices (cached per feeder object; do not
        modify).
    """
    import networkx as nx
    import pandapower.topology as top

    net = feeder.net
    graph = top.create_nxgraph(net, multi=True, include_out_of_service=False)
    sources = set(net.ext_grid.bus[net.ext_grid.in_service].tolist())
    result: dict[str, np.ndarray] = {}
    for asset_id, asset in feeder.assets.iterrows():
        table = net[asset.kind]
        if asset.kind == "trafo":
            a, b = int(table.hv_bus.at[asset.element]), int(table.lv_bus.at[asset.element])
        else:
            a, b = int(table.from_bus.at[asset.element]), int(table.to_bus.at[asset.element])
        # cut the asset's edge(s) in place (a copy of the graph per asset is quadratic),
        # find what loses its path to a source, then put the edge(s) back as they were
        removed = []
        if graph.has_edge(a, b):
            for key in [k for k in graph[a][b] if k == (asset.kind, asset.element)]:
                removed.append((key, dict(graph[a][b][key])))
                graph.remove_edge(a, b, key=key)
        down: set[int] = set()
        for end in (a, b):
            if end in graph:
                component = nx.node_connected_component(graph, end)
                if not component & sources:
                    down |= component
        for key, data in removed:
            graph.add_edge(a, b, key=key, **data)
        result[str(asset_id)] = np.array(sorted(down), dtype=int)
    return result


def service_bus_positions(feeder: Feeder) -> np.ndarray:
    """Positions (in ``net.bus.index`` order) of buses with in-service loads."""
    net = feeder.net
    buses = np.unique(net.load.bus[net.load.in_service].to_numpy())
    return np.flatnonzero(np.isin(net.bus.index.to_numpy(), buses))


def downstream_of(
    downstream: dict[str, np.ndarray], asset_ids: list[str] | np.ndarray, buses: np.ndarray
) -> np.ndarray:
    """Which of ``buses`` each asset feeds: ``out[i, k]`` is True when ``buses[i]`` is
    downstream of ``asset_ids[k]`` (one table lookup instead of a set test per asset).

    Parameters
    ----------
    downstream
        :func:`downstream_buses`' result.
    asset_ids
        The assets, in the column order wanted.
    buses
        Bus indices (e.g. the bus of each load, sgen or EV), shape (n,).

    Returns
    -------
    numpy.ndarray of bool, shape (n, asset)
    """
    buses = np.asarray(buses, dtype=np.int64).reshape(-1)
    ids = [str(a) for a in asset_ids]
    size = 1 + max([int(buses.max(initial=-1))] + [int(downstream[a].max(initial=-1)) for a in ids])
    table = np.zeros((size, len(ids)), dtype=bool)
    for k, asset in enumerate(ids):
        table[downstream[asset], k] = True
    return table[buses] if buses.size else np.zeros((0, len(ids)), dtype=bool)

"""Tests of CNM communities and modularity (Lewis et al. 2023 §3.3, Fig. 8)."""

import networkx as nx
import numpy as np
import pytest
from networkx.algorithms import community as nxc

from xaibids.stats import community_graph, detect_communities


def _blocks(rng, sizes=(4, 6), within=0.6, between=-0.1, noise=0.05):
    n = sum(sizes)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    m = np.where(truth[:, None] == truth[None, :], within, between)
    m = m + rng.normal(0, noise, size=(n, n))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    perm = rng.permutation(n)  # blocks are not contiguous in feature order
    return m[np.ix_(perm, perm)], truth[perm]


def test_two_planted_blocks_recovered():
    rng = np.random.default_rng(0)
    m, truth = _blocks(rng)
    part = detect_communities(m)
    assert part.n_communities == 2
    # community 1 is the larger (6-feature) block
    assert set(np.flatnonzero(part.labels == 1)) == set(np.flatnonzero(truth == 1))
    assert set(np.flatnonzero(part.labels == 2)) == set(np.flatnonzero(truth == 0))
    # the ordering groups each community together, original order within
    ordered = part.labels[part.order]
    assert ordered.tolist() == sorted(ordered.tolist())
    assert part.order[:6].tolist() == sorted(np.flatnonzero(truth == 1).tolist())


def test_modularity_matches_networkx():
    rng = np.random.default_rng(1)
    m, truth = _blocks(rng, sizes=(3, 5, 4), between=0.05, noise=0.1)
    part = detect_communities(m)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(m)))
    for i in range(len(m)):
        for j in range(i + 1, len(m)):
            if m[i, j] > 0:
                graph.add_edge(i, j, weight=m[i, j])
    expected = nxc.greedy_modularity_communities(graph, weight="weight")
    assert sorted(map(sorted, expected)) == sorted(
        sorted(np.flatnonzero(part.labels == c).tolist()) for c in range(1, part.n_communities + 1))
    assert part.modularity == pytest.approx(nxc.modularity(graph, expected, weight="weight"))
    true_parts = [set(np.flatnonzero(truth == k)) for k in range(3)]
    assert part.modularity == pytest.approx(nxc.modularity(graph, true_parts, weight="weight"))
    # the graph keeps only positive off-diagonal entries
    g = community_graph(m)
    assert g.number_of_edges() == graph.number_of_edges()
    assert not any(u == v for u, v in g.edges)


def test_degenerate_graphs_and_errors():
    part = detect_communities(-np.ones((4, 4)))  # no positive edge
    assert np.isnan(part.modularity)
    assert part.labels.tolist() == [1, 2, 3, 4] and part.n_communities == 4
    m = np.eye(5)
    m[0, 1] = m[1, 0] = 0.9
    part = detect_communities(m)
    assert part.labels[0] == part.labels[1] == 1 and part.n_communities == 4
    with pytest.raises(ValueError, match="square"):
        detect_communities(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        detect_communities(np.array([[1.0, 0.2], [0.3, 1.0]]))

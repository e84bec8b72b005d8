"""Communities of class-mean connectivity matrices (Lewis et al. 2023 §3.3, Fig. 8).

Lewis et al. 2023 estimates the communities of each class's co-saliency and sFNC matrix "with the
Clauset-Newman-Moore greedy algorithm" and reports "the overall modularity of each sex" (§3.3;
its refs. [30], [31]). Here:

- graph: one node per feature; an undirected edge between two features weighted by their
  class-mean correlation **when it is positive**; the diagonal (self-correlation) and
  non-finite entries are left out. Negative correlations are dropped because Newman's
  modularity and the CNM algorithm need non-negative weights;
- communities: :func:`networkx.algorithms.community.greedy_modularity_communities`
  (``weight="weight"``, ``resolution=1`` by default); features without any positive edge end up
  as singleton communities;
- modularity: :func:`networkx.algorithms.community.modularity` of that partition on the same
  graph; NaN for a graph without edges (undefined);
- community numbers: 1 is the largest community, ties broken by the lowest feature index; the
  ordering of features (by community, then original order) reorders matrices for plots as in
  Fig. 8.

Note: Lewis et al. 2023 reports sFNC modularities of 0.985 and 1.081; Newman modularity of a graph with
non-negative weights is below 1, so those values cannot be reproduced with this definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
from networkx.algorithms import community as nx_community


@dataclass
class Communities:
    """Partition of the features of one matrix.

    Attributes
    ----------
    labels : ndarray of int, shape (n_features,)
        Community of each feature, numbered from 1 (the largest).
    modularity : float
        Newman modularity of the partition on the positive-weight graph (NaN without edges).
    order : ndarray of int, shape (n_features,)
        Feature indices sorted by community, then by original index (reorders matrices).
    """

    labels: np.ndarray
    modularity: float
    order: np.ndarray

    @property
    def n_communities(self) -> int:
        """Number of communities (singletons included)."""
        return int(self.labels.max()) if self.labels.size else 0


def community_graph(matrix) -> nx.Graph:
    """Undirected graph of the positive, finite off-diagonal entries of a symmetric matrix.

    Parameters
    ----------
    matrix : array-like of shape (n, n)
        Symmetric connectivity matrix (e.g. a class-mean correlation matrix).

    Returns
    -------
    networkx.Graph
        Nodes ``0 … n-1``; edge ``(i, j)`` with attribute ``weight = matrix[i, j]`` for each
        ``i < j`` where that entry is finite and positive.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"community_graph needs a square matrix, got shape {matrix.shape}.")
    if not np.allclose(matrix, matrix.T, equal_nan=True):
        raise ValueError("community_graph needs a symmetric matrix.")
    n = matrix.shape[0]
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    iu, ju = np.triu_indices(n, 1)
    weights = matrix[iu, ju]
    keep = np.isfinite(weights) & (weights > 0)
    graph.add_weighted_edges_from(zip(iu[keep].tolist(), ju[keep].tolist(), weights[keep].tolist()))
    return graph


def detect_communities(matrix, resolution: float = 1.0) -> Communities:
    """Clauset–Newman–Moore greedy modularity communities of a matrix (Lewis et al. 2023 §3.3, Fig. 8).

    Parameters
    ----------
    matrix : array-like of shape (n_features, n_features)
        Symmetric connectivity matrix; see :func:`community_graph` for how it becomes a graph.
    resolution : float, default=1.0
        Resolution of the modularity (1 is Newman's modularity, as in the seed).

    Returns
    -------
    Communities
    """
    if not resolution > 0:
        raise ValueError(f"resolution must be positive, got {resolution!r}.")
    graph = community_graph(matrix)
    n = graph.number_of_nodes()
    if graph.number_of_edges() == 0:
        parts = [frozenset([i]) for i in range(n)]
        score = float("nan")
    else:
        parts = nx_community.greedy_modularity_communities(graph, weight="weight",
                                                           resolution=resolution)
        score = float(nx_community.modularity(graph, parts, weight="weight",
                                              resolution=resolution))
    parts = sorted(parts, key=lambda c: (-len(c), min(c)))
    labels = np.zeros(n, dtype=int)
    for number, members in enumerate(parts, start=1):
        labels[list(members)] = number
    order = np.lexsort((np.arange(n), labels))
    return Communities(labels=labels, modularity=score, order=order)

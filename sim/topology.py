"""Host topologies as edge arrays: random graphs of 10^6 hosts in a second, not a minute.

networkx builds a 6-regular graph of 10^5 nodes in about 3 s and 10^6 in about 40 s, with
a dict per node and per edge (about 1 KB per edge); the world needs only who neighbours
whom. These generators draw the same random graphs with numpy, as two arrays of edge ends,
and :func:`csr` turns them into compressed neighbour lists (``indptr``, ``indices``).

Every draw comes from a numpy generator seeded by the caller (the world draws its seed from
the trial RNG), so a topology is the same for the same seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["csr", "gnp_edges", "regular_edges", "ring_edges", "star_edges"]

Edges = tuple[np.ndarray, np.ndarray]


def ring_edges(n: int) -> Edges:
    """The cycle 0-1-…-(n-1)-0 (one edge for n = 2, none for n < 2)."""
    if n < 2:
        return _empty()
    u = np.arange(n, dtype=np.int64)
    v = (u + 1) % n
    if n == 2:
        return u[:1], v[:1]
    return u, v


def star_edges(n: int) -> Edges:
    """Host 0 linked to every other host."""
    if n < 2:
        return _empty()
    return np.zeros(n - 1, dtype=np.int64), np.arange(1, n, dtype=np.int64)


def gnp_edges(n: int, p: float, rng: np.random.Generator) -> Edges:
    """An Erdős–Rényi G(n, p) graph: each of the n(n-1)/2 pairs linked with probability p.

    The number of edges is drawn from its binomial law, then that many distinct pairs
    uniformly: the same law as testing every pair, in O(n + edges) rather than O(n^2).
    """
    pairs = n * (n - 1) // 2
    if n < 2 or p <= 0:
        return _empty()
    if p >= 1 or pairs <= 2_000_000:
        u, v = np.triu_indices(n, k=1)
        keep = rng.random(u.size) < p
        return u[keep].astype(np.int64), v[keep].astype(np.int64)
    m = int(rng.binomial(pairs, p))
    keys = np.empty(0, dtype=np.int64)
    while keys.size < m:
        # Pairs drawn one after the other, a pair already drawn (or a loop) skipped, until
        # there are m: a uniform set of m pairs. In batches: duplicates are rare when sparse.
        want = m - keys.size + 16
        a = rng.integers(0, n, want, dtype=np.int64)
        b = rng.integers(0, n, want, dtype=np.int64)
        drawn = np.minimum(a, b) * n + np.maximum(a, b)
        drawn = drawn[(a != b) & ~np.isin(drawn, keys)]
        _, first = np.unique(drawn, return_index=True)
        first.sort()  # the first time each new pair came, in the order drawn
        keys = np.concatenate([keys, drawn[first[: m - keys.size]]])
    return keys // n, keys % n


def regular_edges(n: int, d: int, rng: np.random.Generator) -> Edges:
    """A random d-regular simple graph on n nodes (n * d even, d < n).

    The pairing model: n * d stubs paired at random; the few loops and repeated edges it
    makes (about (d^2 - 1) / 4 of them, whatever n) are removed by double-edge swaps with
    random edges, which keep every degree. Like networkx's generator this is
    asymptotically uniform, not exactly.

    Raises:
        ValueError: no such graph exists.
    """
    if d < 0 or d >= max(n, 1) or (n * d) % 2:
        raise ValueError(f"no {d}-regular graph on {n} nodes")
    if d == 0:
        return _empty()
    if 2 * d > n - 1:
        # Dense: the complement of a sparse regular graph (swaps rarely find room here).
        u, v = regular_edges(n, n - 1 - d, rng)
        return _complement(n, u, v)
    for _ in range(100):
        drawn = _pairing(n, d, rng)
        if drawn is not None:
            return drawn
    raise ValueError(f"could not draw a {d}-regular graph on {n} nodes")  # pragma: no cover


def _pairing(n: int, d: int, rng: np.random.Generator) -> Edges | None:
    """One pairing of stubs with its bad edges swapped away (None: a swap found no room;
    only on tiny graphs)."""
    stubs = np.repeat(np.arange(n, dtype=np.int64), d)
    rng.shuffle(stubs)
    a, b = stubs[0::2], stubs[1::2]
    u, v = np.minimum(a, b), np.maximum(a, b)
    keys = u * n + v
    while True:
        order = np.argsort(keys, kind="stable")
        repeated = np.zeros(keys.size, dtype=bool)
        repeated[order[1:]] = keys[order[1:]] == keys[order[:-1]]
        bad = np.flatnonzero((u == v) | repeated)
        if bad.size == 0:
            return u, v
        for i in bad.tolist():
            if not _swap_out(i, u, v, keys, n, rng):
                return None


def _swap_out(
    i: int, u: np.ndarray, v: np.ndarray, keys: np.ndarray, n: int, rng: np.random.Generator
) -> bool:
    """Replace edge ``i`` (a loop or a repeat) and a random edge j by two new edges with the
    same ends: (a, b), (x, y) -> (a, x), (b, y), when neither new edge is a loop or a repeat.
    (A scan of the key array per candidate: a few dozen scans per graph, ~2 ms each at 10^6.)
    """
    m = u.size
    a, b = int(u[i]), int(v[i])
    for _ in range(100):
        j = int(rng.integers(m))
        x, y = int(u[j]), int(v[j])
        if rng.random() < 0.5:
            x, y = y, x
        if j == i or a == x or b == y:
            continue
        k1 = min(a, x) * n + max(a, x)
        k2 = min(b, y) * n + max(b, y)
        if k1 == k2 or (keys == k1).any() or (keys == k2).any():
            continue
        for idx, (p, q) in ((i, (a, x)), (j, (b, y))):
            u[idx], v[idx] = min(p, q), max(p, q)
            keys[idx] = min(p, q) * n + max(p, q)
        return True
    return False


def _complement(n: int, u: np.ndarray, v: np.ndarray) -> Edges:
    cu, cv = np.triu_indices(n, k=1)
    taken = np.zeros((n, n), dtype=bool)
    taken[u, v] = True
    keep = ~taken[cu, cv]
    return cu[keep].astype(np.int64), cv[keep].astype(np.int64)


def csr(n: int, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges as compressed neighbour lists: the neighbours of node i are
    ``indices[indptr[i]:indptr[i + 1]]``, in the order the edges were given."""
    ends = np.concatenate([u, v])
    others = np.concatenate([v, u])
    order = np.argsort(ends, kind="stable")  # about 1 s for 3 * 10^6 edges
    indices = others[order]
    counts = np.bincount(ends, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, indices


def _empty() -> Edges:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)

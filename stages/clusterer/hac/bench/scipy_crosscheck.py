#!/usr/bin/env python3
"""Random SciPy cases with many exact ties, for hac's opt-in cross-check test.

Writes one JSON object to stdout:
  {"generator": ..., "cases": [...],          # oracle-format point cases
   "linkage_cases": [{"n", "method", "d", "Z", "t", "labels"}]}  # condensed input

Run by TestScipyCrosscheck when HAC_CROSSCHECK=1 (python from HAC_PYTHON).
"""
import json
import sys

import numpy as np
import scipy
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]


def original_cluster(points, method, metric, sim, min_csize, timestamps=None, alpha=0.0):
    d = pdist(points, metric)
    if timestamps is not None:
        dt = pdist(np.asarray(timestamps, dtype=float).reshape(-1, 1))
        d = (1 - alpha) * d / d.max() + alpha * dt / dt.max()
    Z = linkage(d, method)
    t = d.max() * (1 - sim)
    labels = fcluster(Z, t, criterion="distance")
    groups = {}
    for i, l in enumerate(labels):
        groups.setdefault(int(l), []).append(i)
    clusters = sorted(g for g in groups.values() if len(g) >= min_csize)
    return t, Z, clusters


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    rng = np.random.default_rng(seed)
    cases = []
    for k in range(60):
        method = METHODS[k % len(METHODS)]
        n = int(rng.integers(3, 70))
        kind = k % 4
        if kind == 0:  # integer grid: exact, tied distances
            pts = rng.integers(0, 4, size=(n, int(rng.integers(1, 4)))).astype(float)
        elif kind == 1:  # duplicated points
            base = rng.standard_normal((max(2, n // 3), 5))
            pts = base[rng.integers(0, len(base), n)]
        elif kind == 2:  # fingerprint-like
            pts = rng.standard_normal((n, 16))
            pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        else:  # general
            pts = rng.standard_normal((n, 3)) * 10
        metric = "cosine" if (k % 5 == 4 and kind != 0) else "euclidean"
        ts = None
        alpha = 0.0
        if k % 6 == 5:
            ts = rng.integers(0, 10, n).astype(float)
            if ts.max() == ts.min():
                ts[0] += 1
            alpha = float(rng.choice([0.0, 0.3, 1.0]))
        sim = float(rng.choice([0.0, 0.3, 0.55, 0.9, 1.0]))
        min_csize = int(rng.integers(1, 4))
        d = pdist(pts, metric)
        if d.max() == 0:
            continue
        with np.errstate(all="ignore"):
            t, Z, clusters = original_cluster(pts, method, metric, sim, min_csize, ts, alpha)
        if not np.all(np.isfinite(Z)):
            continue
        c = {"name": f"x{k}-{method}-{metric}-n{n}", "method": method, "metric": metric, "sim": sim,
             "min_csize": min_csize, "points": pts.tolist(),
             "expected": {"threshold": float(t), "linkage": Z.tolist(), "clusters": clusters}}
        if ts is not None:
            c["timestamps"] = ts.tolist()
            c["alpha"] = alpha
        cases.append(c)

    lcases = []
    for k in range(140):
        method = METHODS[k % len(METHODS)]
        n = int(rng.integers(2, 60))
        m = n * (n - 1) // 2
        if k % 2 == 0:
            d = rng.integers(1, 4, m).astype(float)  # heavy ties
        else:
            d = rng.random(m)
        with np.errstate(all="ignore"):
            Z = linkage(d, method)
        if not np.all(np.isfinite(Z)):
            continue
        t = float(np.quantile(Z[:, 2], rng.random()))
        labels = fcluster(Z, t, criterion="distance")
        lcases.append({"n": n, "method": method, "d": d.tolist(), "Z": Z.tolist(), "t": t,
                       "labels": labels.tolist()})
    json.dump({"generator": f"scipy {scipy.__version__}, numpy {np.__version__}, seed {seed}",
               "cases": cases, "linkage_cases": lcases}, sys.stdout)


if __name__ == "__main__":
    main()

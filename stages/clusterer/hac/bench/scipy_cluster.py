#!/usr/bin/env python3
"""SciPy side of the hac benchmark (run by bench/main.go).

Reads n×d float64 points (little-endian, row-major) written by the Go side,
runs the original cluster() step with SciPy -- pdist, linkage, fcluster at
max(d)·(1−sim) -- and, on the same condensed array, fastcluster.linkage, and
prints one JSON object: timings in seconds, peak RSS, threshold and labels.

usage: scipy_cluster.py POINTS.f64 N D [METHOD [SIM]]
       scipy_cluster.py --case CASE.json[.gz]|POINTS.npy   (whole task, reading included)
"""
import gzip
import json
import resource
import sys
import time

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist


def canonical(labels):
    """Labels renumbered by first occurrence: equal iff same partition."""
    seen = {}
    return [seen.setdefault(int(l), len(seen)) for l in labels]


def clusters_of(labels, min_csize):
    """hac.GroupLabels: clusters of at least min_csize members, sorted."""
    groups = {}
    for i, l in enumerate(labels):
        groups.setdefault(int(l), []).append(i)
    return sorted(g for g in groups.values() if len(g) >= min_csize)


def whole_task(path):
    """The original's whole cluster() task on a case file, reading included:
    json.load (or np.load and the JSON sidecar) + pdist + linkage + fcluster."""
    c0, t0 = time.process_time(), time.perf_counter()
    if path.endswith(".npy"):
        X = np.load(path)
        try:
            with open(path + ".json") as f:
                case = json.load(f)
        except FileNotFoundError:
            case = {}
    else:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            case = json.load(f)
        X = np.asarray(case["points"], dtype=np.float64)
    t1 = time.perf_counter()
    method = case.get("method", "average")
    metric = case.get("metric", "euclidean")
    sim = case.get("sim", 0.55)
    min_csize = case.get("min_csize", 3)
    dist = pdist(X, metric)
    Z = linkage(dist, method)
    thr = dist.max() * (1 - sim)
    labels = fcluster(Z, thr, criterion="distance")
    t2, c2 = time.perf_counter(), time.process_time()
    out = {
        "cpu_s": c2 - c0,
        "load_s": t1 - t0,
        "total_s": t2 - t0,
        "threshold": float(thr),
        "clusters": clusters_of(labels, min_csize),
        "maxrss_scipy_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def main():
    if sys.argv[1] == "--case":
        whole_task(sys.argv[2])
        return
    path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    method = sys.argv[4] if len(sys.argv) > 4 else "average"
    sim = float(sys.argv[5]) if len(sys.argv) > 5 else 0.55
    X = np.fromfile(path, dtype="<f8").reshape(n, d)
    rss_points = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    t0 = time.perf_counter()
    dist = pdist(X, "euclidean")
    t1 = time.perf_counter()
    Z = linkage(dist, method)
    t2 = time.perf_counter()
    thr = dist.max() * (1 - sim)
    labels = fcluster(Z, thr, criterion="distance")
    t3 = time.perf_counter()
    rss_scipy = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    out = {
        "pdist_s": t1 - t0,
        "linkage_s": t2 - t1,
        "fcluster_s": t3 - t2,
        "total_s": t3 - t0,
        "threshold": float(thr),
        "labels": labels.tolist(),
        "maxrss_before_bytes": rss_points,
        "maxrss_scipy_bytes": rss_scipy,
    }
    try:
        import fastcluster
    except ImportError:
        out["fastcluster_linkage_s"] = None
    else:
        t4 = time.perf_counter()
        Zf = fastcluster.linkage(dist, method=method, preserve_input=True)
        t5 = time.perf_counter()
        out["fastcluster_linkage_s"] = t5 - t4
        out["fastcluster_same_partition"] = canonical(
            fcluster(Zf, thr, criterion="distance")) == canonical(labels)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Trajectory anchors: k-means on the training futures (DiffusionDrive §3.2, K = 20)."""

from __future__ import annotations

import numpy as np

from diffcore.errors import InvalidInputError


def kmeans_anchors(futures: np.ndarray, k: int = 20, *, seed: int = 0) -> np.ndarray:
    """Cluster expert futures (N, H, 3) on their (x, y) waypoints; returns (k, H, 3) cluster means (metres, rad).

    scikit-learn's k-means (k-means++ init, 10 restarts) on the flattened
    waypoints, as the reference clusters its 8 × 2 training trajectories; the
    anchor's headings are the mean headings of its cluster.
    """
    from sklearn.cluster import KMeans

    if futures.ndim != 3 or futures.shape[-1] != 3:
        raise InvalidInputError(f"futures must be (N, H, 3), got {futures.shape}")
    if len(futures) < k:
        raise InvalidInputError(f"need at least k={k} trajectories to fit {k} anchors, got {len(futures)}")
    xy = futures[..., :2].reshape(len(futures), -1).astype(np.float64)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(xy)
    out = np.zeros((k, *futures.shape[1:]), dtype=np.float32)
    for j in range(k):
        out[j] = futures[km.labels_ == j].mean(axis=0)
    order = np.lexsort((out[:, -1, 1], out[:, -1, 0]))  # a stable order: by end point x, then y
    return out[order]


def nearest_anchor(anchors: np.ndarray, futures: np.ndarray) -> np.ndarray:
    """Index of each future's nearest anchor by mean waypoint distance (the reference's matching): (N,)."""
    d = np.linalg.norm(futures[:, None, :, :2] - anchors[None, :, :, :2], axis=-1).mean(-1)  # (N, K)
    return d.argmin(1)

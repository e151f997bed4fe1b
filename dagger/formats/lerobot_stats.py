"""LeRobot's per-feature statistics (lerobot datasets/compute_stats.py), for meta/stats.json and each episode's
stats in meta/episodes: min, max, mean, std, count and the histogram quantiles q01..q99; per dimension for vectors,
per channel for images ([3, 1, 1], divided by 255, over sampled frames).

    stats = feature_stats(actions, image=False)        # one episode's
    total = aggregate(total, stats)                    # folded in as save_episode does
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # compute_stats.py DEFAULT_QUANTILES
QUANTILE_BINS = 5000


def _quantile_stats(batch: np.ndarray) -> dict[str, np.ndarray]:
    """lerobot compute_stats.py RunningQuantileStats: one update() with the whole batch, then get_statistics()."""
    batch = batch.astype(np.result_type(batch.dtype, np.float32), copy=False)
    with np.errstate(all="ignore"):  # the moments of huge or non-finite values are inf or NaN, as LeRobot's are
        return _moments_and_quantiles(batch)


def _moments_and_quantiles(batch: np.ndarray) -> dict[str, np.ndarray]:
    n, width = batch.shape
    mean, mean_sq = np.mean(batch, axis=0), np.mean(batch**2, axis=0)
    low, high = np.min(batch, axis=0), np.max(batch, axis=0)
    # RunningQuantileStats.update's running step, kept though it adds 0 to finite moments: on inf it makes NaN, as
    # LeRobot's stats do
    mean += (np.mean(batch, axis=0) - mean) * (n / n)
    mean_sq += (np.mean(batch**2, axis=0) - mean_sq) * (n / n)
    stats = {"min": low.copy(), "max": high.copy(), "mean": mean.copy(),
             "std": np.sqrt(np.maximum(0, mean_sq - mean**2)), "count": np.array([n])}
    edges = [np.linspace(low[i] - 1e-10, high[i] + 1e-10, QUANTILE_BINS + 1) for i in range(width)]
    hists = [np.histogram(batch[:, i], bins=edges[i])[0].astype(np.float64) if np.isfinite(edges[i]).all()
             else None for i in range(width)]  # NaN or inf: LeRobot's histogram raises; dagger writes NaN quantiles
    for q in QUANTILES:
        stats[f"q{int(q * 100):02d}"] = np.array([np.float32(np.nan) if h is None else _quantile(h, e, q * n)
                                                  for h, e in zip(hists, edges, strict=True)])
    return stats


def _quantile(hist: np.ndarray, edges: np.ndarray, target: float) -> Any:
    """lerobot compute_stats.py RunningQuantileStats._compute_single_quantile."""
    cumsum = np.cumsum(hist)
    idx = int(np.searchsorted(cumsum, target))
    if idx == 0:
        return edges[0]  # numpy scalars, not floats: LeRobot's dtype (float32 edges stay float32) carries into json
    if idx >= len(cumsum):
        return edges[-1]
    before = cumsum[idx - 1]
    in_bin = cumsum[idx] - before
    if in_bin == 0:
        return edges[idx]
    return edges[idx] + (target - before) / in_bin * (edges[idx + 1] - edges[idx])


def feature_stats(array: np.ndarray, image: bool) -> dict[str, np.ndarray]:
    """lerobot compute_stats.py get_feature_stats + compute_episode_stats: per dimension (vectors, keepdims for
    scalars), per channel for images ([3, 1, 1], divided by 255, over sampled frames)."""
    if image:
        picks = np.round(np.linspace(0, len(array) - 1, max(min(100, len(array)), min(int(len(array) ** 0.75),
                                                                                       10_000)))).astype(int)
        frames = array[picks].transpose(0, 3, 1, 2)  # sample_images: channel first
        reshaped, count = frames.transpose(0, 2, 3, 1).reshape(-1, frames.shape[1]), len(frames)
    else:
        reshaped, count = (array.reshape(-1, 1) if array.ndim == 1 else array), len(array)
    if len(reshaped) < 2:  # _compute_basic_stats (cast to float first: a bool min beside float ones breaks Arrow)
        reshaped = reshaped.astype(np.result_type(reshaped.dtype, np.float32))
        with np.errstate(all="ignore"):
            stats = {"min": np.min(reshaped, axis=0), "max": np.max(reshaped, axis=0),
                     "mean": np.mean(reshaped, axis=0), "std": np.std(reshaped, axis=0), "count": np.array([count])}
        stats |= {f"q{int(q * 100):02d}": stats["mean"].copy() for q in QUANTILES}
    else:
        stats = _quantile_stats(reshaped)
        stats["count"] = np.array([count])
    if image:
        return {k: v if k == "count" else v.reshape(3, 1, 1) / 255.0 for k, v in stats.items()}
    return stats


def aggregate(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """lerobot compute_stats.py aggregate_feature_stats of two (save_episode folds episodes in one at a time)."""
    means, variances, counts = np.stack([a["mean"], b["mean"]]), np.stack([a["std"] ** 2, b["std"] ** 2]), \
        np.stack([a["count"], b["count"]])
    total = counts.sum(axis=0)
    while counts.ndim < means.ndim:
        counts = np.expand_dims(counts, axis=-1)
    mean = (means * counts).sum(axis=0) / total
    variance = ((variances + (means - mean) ** 2) * counts).sum(axis=0) / total
    out = {"min": np.min(np.stack([a["min"], b["min"]]), axis=0), "max": np.max(np.stack([a["max"], b["max"]]), axis=0),
           "mean": mean, "std": np.sqrt(variance), "count": total}
    for q in (k for k in a if k.startswith("q")):
        pick = np.min if int(q[1:]) <= 50 else np.max
        out[q] = pick(np.stack([a[q], b[q]]), axis=0)
    return out

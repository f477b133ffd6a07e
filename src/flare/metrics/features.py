"""Feature-space view of each method: t-SNE (scikit-learn) of penultimate test features, with silhouette and
Davies–Bouldin scores computed on the standardised features themselves (not on the 2-D picture)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["embed_features"]


def embed_features(features: np.ndarray, labels: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """2-D t-SNE coordinates plus cluster-quality scores of ``features`` grouped by ``labels``.

    Silhouette is in [-1, 1] (higher: tighter, better separated classes); Davies–Bouldin is ≥ 0 (lower is
    better). Both need at least two classes and more samples than classes; otherwise they are NaN.
    """
    from sklearn.manifold import TSNE
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    features = np.asarray(features, dtype=np.float64)
    labels = list(labels)
    n = len(features)
    std = features.std(0)
    scaled = (features - features.mean(0)) / np.where(std > 0, std, 1.0)
    distinct = len(set(labels))
    silhouette = davies_bouldin = float("nan")
    if 2 <= distinct < n:
        silhouette = float(silhouette_score(scaled, labels))
        davies_bouldin = float(davies_bouldin_score(scaled, labels))
    if n >= 4:
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                      max_iter=500).fit_transform(scaled)
    else:
        coords = np.zeros((n, 2))
    return {"x": coords[:, 0].round(4).tolist(), "y": coords[:, 1].round(4).tolist(), "labels": labels,
            "silhouette": silhouette, "davies_bouldin": davies_bouldin, "n": n}

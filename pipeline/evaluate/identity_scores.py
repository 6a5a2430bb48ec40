"""How far translated faces moved to the target identity, on dlib face descriptors (pipeline.face.identity).

A translation A->B transfers identity when its frames land nearer domain B's centroid than A's.
The Frechet distance between translated and real target descriptors stands in for FID, whose
Inception weights cannot be obtained offline; it measures realism as this face recogniser sees
it, not as Inception would.
"""
from __future__ import annotations

import numpy as np

from pipeline.common.errors import FacecycleError

SAME_PERSON = 0.6  # dlib's threshold on descriptor distance


def centroid(descriptors: np.ndarray, where: str) -> np.ndarray:
    """Mean descriptor of the faces found; `where` names the source when none is."""
    found = descriptors[~np.isnan(descriptors).any(axis=1)]
    if not len(found):
        raise FacecycleError(f"{where}: no face found in any crop, cannot form its identity centroid")
    return found.mean(axis=0)


def identity_transfer(descriptors: np.ndarray, target: np.ndarray, source: np.ndarray) -> dict:
    """Share of frames nearer the `target` centroid than the `source` one (failures count as not
    nearer), mean distance to the target over described frames, and the failure count."""
    found = ~np.isnan(descriptors).any(axis=1)
    to_target = np.linalg.norm(descriptors[found] - target, axis=1)
    to_source = np.linalg.norm(descriptors[found] - source, axis=1)
    n = len(descriptors)
    return {
        "described": n,
        "failures": int(n - found.sum()),
        "identity_share": float((to_target < to_source).sum() / n) if n else float("nan"),
        "target_distance": float(to_target.mean()) if found.any() else float("nan"),
    }


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two descriptor sets (NaN rows dropped):
    |mu_x - mu_y|^2 + Tr(S_x + S_y - 2 (S_x S_y)^1/2), as in FID. Tr (S_x S_y)^1/2 is computed
    as the trace of the root of the symmetric S_x^1/2 S_y S_x^1/2, whose eigenvalues are real."""
    x, y = (d[~np.isnan(d).any(axis=1)] for d in (x, y))
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    w, v = np.linalg.eigh(cov_x)
    root_x = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_x @ cov_y @ root_x), 0, None)).sum()
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * cross)

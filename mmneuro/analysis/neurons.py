"""Latent <-> neuron statistics: correlations with a shuffle null and FDR, encoding models, unit clusters.

All functions take plain arrays: latents ``z`` (syllable, latent) and rates (syllable, unit) in Hz.
"""

from __future__ import annotations

import numpy as np


def correlation(x: np.ndarray, y: np.ndarray, method: str = "pearson") -> np.ndarray:
    """Correlation of every column of ``x`` (N, A) with every column of ``y`` (N, B): (A, B).

    ``spearman`` is Pearson on ranks (average ranks for ties). A constant column gives 0, not NaN.
    """
    if method == "spearman":
        from scipy.stats import rankdata

        x, y = rankdata(x, axis=0), rankdata(y, axis=0)
    elif method != "pearson":
        raise ValueError(f"unknown correlation method {method!r}")
    return _standardise(x).T @ _standardise(y) / len(x)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, np.inf)


def shuffle_null_pvalues(x: np.ndarray, y: np.ndarray, *, method: str = "pearson", null: str = "circular",
                         n_permutations: int = 1000, groups: np.ndarray | None = None,
                         seed: int = 0, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Observed correlations (A, B) and two-sided shuffle p-values (A, B).

    ``permutation`` permutes the rows of ``y``; ``circular`` shifts ``y`` by a random lag within each
    group (a session, rows in onset order), which keeps slow trends and within-bout autocorrelation in
    the null. p = (1 + #{|r_null| >= |r_obs|}) / (1 + n_permutations) (Phipson & Smyth 2010), so p > 0.
    """
    from tqdm import tqdm

    if method == "spearman":
        from scipy.stats import rankdata

        x, y = rankdata(x, axis=0), rankdata(y, axis=0)
    xs, ys = _standardise(x), _standardise(y)
    n = len(xs)
    observed = xs.T @ ys / n
    groups = np.zeros(n, dtype=int) if groups is None else np.asarray(groups)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    exceed = np.zeros_like(observed)
    for _ in tqdm(range(n_permutations), desc="shuffle null", disable=not progress, leave=False):
        if null == "permutation":
            order = rng.permutation(n)
        elif null == "circular":
            order = np.arange(n)
            for idx in members:
                order[idx] = np.roll(idx, rng.integers(1, max(len(idx), 2)))
        else:
            raise ValueError(f"unknown null {null!r}")
        exceed += np.abs(xs.T @ ys[order] / n) >= np.abs(observed) - 1e-12
    return observed, (1.0 + exceed) / (1.0 + n_permutations)


def circular_orders(groups: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` row orders (n, N), each a circular shift by a random non-zero lag within every group
    (a session, rows in onset order): the null keeps autocorrelation and slow trends of the data."""
    groups = np.asarray(groups)
    orders = np.tile(np.arange(len(groups)), (n, 1))
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if len(idx) < 2:
            continue
        lags = rng.integers(1, len(idx), n)
        orders[:, idx] = idx[(np.arange(len(idx))[None, :] - lags[:, None]) % len(idx)]
    return orders


def quantile_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index (N,) of each value among ``n_bins`` bins of (about) equal size, by rank
    (ties share a bin, so a feature with many equal values gets fewer, larger bins)."""
    from scipy.stats import rankdata

    ranks = rankdata(values, method="min") - 1
    return np.minimum((ranks * n_bins) // len(values), n_bins - 1).astype(int)


def feature_bins(features: dict[str, np.ndarray], n_bins: int) -> np.ndarray:
    """One-hot membership (N, F * n_bins) of every syllable in the quantile bins of every feature."""
    columns = [np.eye(n_bins)[quantile_bins(values, n_bins)] for values in features.values()]
    return np.concatenate(columns, axis=1)


def tuning_test(counts: np.ndarray, exposure_s: np.ndarray, features: dict[str, np.ndarray], *,
                groups: np.ndarray | None = None, n_shifts: int = 1000, n_bins: int = 8, seed: int = 0) -> dict:
    """Per-unit test of "the unit's spike count depends on which syllable it is", on raw counts.

    counts (N, U) spikes per syllable window, exposure_s (N,) window lengths, features name -> (N,)
    measured syllable features; rows in onset order within each of ``groups`` (sessions).
    Statistic per unit: the largest, over features, Pearson chi-square of the unit's spikes in
    ``n_bins`` quantile bins of the feature against spikes expected from its pooled rate and the bins'
    exposure (a tuning curve that is not flat, whatever its shape). Null: circular shifts of the unit's
    (count, exposure) sequence against the syllables within each session, which keeps its own firing
    statistics (rate, overdispersion, slow drift, bursts) and the syllables' order. Two-sided by
    construction; p = (1 + #{null >= observed}) / (1 + n_shifts) (Phipson & Smyth 2010).
    Returns ``statistic`` (U,), ``p`` (U,), ``feature`` (U,) the feature with the largest chi-square.
    """
    counts = np.asarray(counts, dtype=np.float64)
    exposure_s = np.asarray(exposure_s, dtype=np.float64)
    n = len(counts)
    names = list(features)
    if not names:
        raise ValueError("tuning_test needs at least one syllable feature")
    onehot = feature_bins(features, n_bins)
    rate = counts.sum(0) / exposure_s.sum()  # (U,) pooled rate; unchanged by any reordering

    def chi2(c: np.ndarray, e: np.ndarray) -> np.ndarray:  # (F, U) statistic per feature
        observed = onehot.T @ c
        expected = (onehot.T @ e)[:, None] * rate[None, :]
        term = np.where(expected > 0, (observed - expected) ** 2 / np.where(expected > 0, expected, 1.0), 0.0)
        return term.reshape(len(names), n_bins, -1).sum(1)

    per_feature = chi2(counts, exposure_s)
    observed = per_feature.max(0)
    groups = np.zeros(n, dtype=int) if groups is None else np.asarray(groups)
    exceed = np.zeros(counts.shape[1])
    for order in circular_orders(groups, n_shifts, np.random.default_rng(seed)):
        exceed += chi2(counts[order], exposure_s[order]).max(0) >= observed - 1e-9
    return {"statistic": observed, "p": (1.0 + exceed) / (1.0 + n_shifts),
            "feature": np.array(names)[per_feature.argmax(0)]}


def tuning_profiles(counts: np.ndarray, exposure_s: np.ndarray, features: dict[str, np.ndarray],
                    n_bins: int = 16) -> np.ndarray:
    """What each unit encodes, model-free: its tuning curves over the syllable features, (U, F * n_bins).

    Per feature, the unit's rate in each of ``n_bins`` quantile bins (spikes / exposure in the bin)
    relative to its pooled rate, minus 1; the concatenated curves scaled to unit length, so units
    with the same tuning but different gains lie close (Euclidean distance ~ correlation distance).
    """
    counts = np.asarray(counts, dtype=np.float64)
    exposure_s = np.asarray(exposure_s, dtype=np.float64)
    rate = counts.sum(0) / exposure_s.sum()
    onehot = feature_bins(features, n_bins)
    e = onehot.T @ exposure_s
    curve = (onehot.T @ counts) / np.where(e > 0, e, np.inf)[:, None]  # (F * bins, U); empty bin -> 0
    profiles = np.where(e[:, None] > 0, curve / np.where(rate > 0, rate, np.inf) - 1.0, 0.0).T
    norm = np.linalg.norm(profiles, axis=1, keepdims=True)
    return profiles / np.where(norm > 0, norm, 1.0)


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (same shape as ``p``): q_(i) = min_{j>=i} p_(j) m / j, capped at 1."""
    # not scipy.stats.false_discovery_control(p, axis=None): it differs in the last bit (another order
    # of operations) and took 4x as long on a 16 x 60 array, so latent_neuron.nc's q would change
    flat = np.asarray(p, dtype=np.float64).ravel()
    m = flat.size
    order = np.argsort(flat)
    scaled = flat[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q = np.empty(m)
    q[order] = q_sorted
    return q.reshape(np.shape(p))


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Poisson deviance per column: 2 sum_n [y log(y/mu) - (y - mu)], with 0 log 0 = 0."""
    y = np.asarray(y, dtype=np.float64)
    mu = np.maximum(np.asarray(mu, dtype=np.float64), 1e-9)
    term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return 2.0 * np.sum(term - (y - mu), axis=0)


def deviance_explained(y: np.ndarray, mu: np.ndarray, mu_null: np.ndarray | None = None) -> np.ndarray:
    """Fraction of Poisson deviance explained per column, 1 - D(y, mu) / D(y, mu_null).

    ``mu_null`` defaults to each column's mean of ``y`` (the intercept-only model); on held-out
    data it can be a training-set mean, and the result can then be negative.
    """
    y = np.asarray(y, dtype=np.float64)
    if mu_null is None:
        mu_null = np.broadcast_to(y.mean(axis=0), y.shape)
    d0 = poisson_deviance(y, mu_null)
    return 1.0 - poisson_deviance(y, mu) / np.where(d0 > 0, d0, np.nan)


def r_squared(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, 1 - SS_res / SS_tot (sklearn.metrics.r2_score);
    NaN for a constant column of ``y``, where it is undefined (r2_score would say 0 or 1)."""
    from sklearn.metrics import r2_score

    y = np.asarray(y, dtype=np.float64)
    return np.where(np.ptp(y, axis=0) > 0, r2_score(y, pred, multioutput="raw_values"), np.nan)


def pearson_columns(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of ``y`` and ``pred`` (N, U) -> (U,)."""
    return np.einsum("nu,nu->u", _standardise(y), _standardise(pred)) / len(y)


def encoding_model(z: np.ndarray, counts: np.ndarray, exposure_s: np.ndarray, *, kind: str = "poisson",
                   alpha: float = 1.0, folds: int = 5, seed: int = 0, progress: bool = False) -> dict:
    """Cross-validated encoding model per unit: counts ~ latents.

    z (N, D); counts (N, U) spikes; exposure_s (N,) window length (s). ``poisson``: a GLM with log link
    and a log(exposure) offset; ``ridge``: ridge regression of the rate with sample weight = exposure.
    Both penalise ``alpha/2 ||w||^2`` (not the intercept) on the summed loss and are fitted for all
    units at once (batched Newton / one linear solve). Inputs are standardised within each training
    fold. Returns out-of-fold predicted counts (N, U), and per unit ``deviance_explained`` (vs the
    training folds' mean rate) and ``r2`` of the counts.
    """
    from sklearn.model_selection import KFold
    from tqdm import tqdm

    if kind not in ("poisson", "ridge"):
        raise ValueError(f"unknown encoding model {kind!r}")
    n, n_units = counts.shape
    counts = np.asarray(counts, dtype=np.float64)
    pred = np.zeros((n, n_units))
    null = np.zeros((n, n_units))
    splits = list(KFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(z))
    for train, test in tqdm(splits, desc="encoding model", disable=not progress, leave=False):
        mean, sd = z[train].mean(0), z[train].std(0)
        sd = np.where(sd > 0, sd, 1.0)
        xtr = np.column_stack([np.ones(len(train)), (z[train] - mean) / sd])
        xte = np.column_stack([np.ones(len(test)), (z[test] - mean) / sd])
        e = exposure_s[train]
        null[test] = (counts[train].sum(0) / e.sum()) * exposure_s[test, None]
        if kind == "poisson":
            beta = _poisson_glm(xtr, counts[train], np.log(e), alpha)
            pred[test] = np.exp(xte @ beta) * exposure_s[test, None]
        else:
            penalty = alpha * np.diag([0.0] + [1.0] * (xtr.shape[1] - 1))
            beta = np.linalg.solve(xtr.T @ (xtr * e[:, None]) + penalty, xtr.T @ counts[train])
            # a linear model can predict negative rates; floor at 1% of the mean rate so one such
            # syllable does not dominate the Poisson deviance (the GLM's exp link never needs it)
            floor = 0.01 * counts[train].sum(0) / e.sum() + 1e-9
            pred[test] = np.maximum(xte @ beta, floor) * exposure_s[test, None]
    return {"pred": pred, "deviance_explained": deviance_explained(counts, pred, null),
            "r2": r_squared(counts, pred)}


def _poisson_glm(x: np.ndarray, y: np.ndarray, offset: np.ndarray, alpha: float,
                 max_iter: int = 50, tol: float = 1e-8) -> np.ndarray:
    """Penalised Poisson GLM for every column of ``y`` at once by damped Newton steps.

    x (N, P) with an intercept column first; y (N, U) counts; offset (N,) log exposure.
    Minimises sum(exp(eta) - y*eta) + alpha/2 ||beta[1:]||^2 with eta = x @ beta + offset.
    Returns beta (P, U).
    """
    n_units = y.shape[1]
    ridge = alpha * np.diag([0.0] + [1.0] * (x.shape[1] - 1))
    beta = np.zeros((x.shape[1], n_units))
    # start at the mean rate: the intercept-only optimum (floored so silent units stay finite)
    beta[0] = np.log(np.maximum(y.sum(0), 0.5) / np.exp(offset).sum())

    def objective(b):
        eta = x @ b + offset[:, None]
        return (np.exp(eta) - y * eta).sum(0) + 0.5 * np.einsum("pu,pq,qu->u", b, ridge, b)

    current = objective(beta)
    for _ in range(max_iter):
        mu = np.exp(x @ beta + offset[:, None])
        grad = x.T @ (mu - y) + ridge @ beta
        hess = np.einsum("np,nu,nq->upq", x, mu, x) + ridge
        hess[:, 0, 0] += 1e-9  # a unit with no spikes has a flat intercept direction
        step = np.linalg.solve(hess, grad.T[:, :, None])[:, :, 0].T
        # halve the step per unit until the objective does not increase (Newton can overshoot)
        scale = np.ones(n_units)
        for _ in range(30):
            trial = objective(beta - step * scale)
            worse = ~(trial <= current)
            if not worse.any():
                break
            scale[worse] *= 0.5
        beta = beta - step * scale
        improvement = current - trial
        current = trial
        if np.all(np.abs(improvement) <= tol * (1 + np.abs(current))):
            break
    return beta


def cluster_profiles(profiles: np.ndarray, *, n_clusters: int = 0, max_clusters: int = 12) -> dict:
    """Ward hierarchical clustering of units by their latent-correlation profiles (U, D).

    ``n_clusters`` = 0 picks k in 2..max_clusters maximising the mean silhouette (Rousseeuw 1987)
    on Euclidean distances. Returns ``labels`` (U,) numbered 1..k in dendrogram order,
    ``linkage`` (scipy linkage matrix), ``k`` and ``silhouette`` (k -> score, criterion runs only).
    """
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    from sklearn.metrics import silhouette_score

    n_units = len(profiles)
    if n_units < 3:
        return {"labels": np.ones(n_units, dtype=int), "linkage": None, "k": 1, "silhouette": {}}
    tree = linkage(profiles, method="ward")
    scores = {}
    if n_clusters:
        k = min(n_clusters, n_units)
    else:
        for kk in range(2, min(max_clusters, n_units - 1) + 1):
            labels = fcluster(tree, kk, criterion="maxclust")
            if len(np.unique(labels)) > 1:
                scores[kk] = float(silhouette_score(profiles, labels))
        k = max(scores, key=scores.get) if scores else 1
    raw = fcluster(tree, k, criterion="maxclust")
    # renumber so cluster 1 is leftmost in the dendrogram (figures and tables agree)
    first_seen = {}
    for leaf in leaves_list(tree):
        first_seen.setdefault(raw[leaf], len(first_seen) + 1)
    labels = np.array([first_seen[c] for c in raw])
    return {"labels": labels, "linkage": tree, "k": int(len(first_seen)), "silhouette": scores}


def defining_latents(profiles: np.ndarray, labels: np.ndarray, n: int = 2) -> dict[int, list[tuple[int, float]]]:
    """Per cluster (labels >= 0), the ``n`` latents with the largest |mean correlation| over its units:
    ``{cluster: [(latent index, mean r), ...]}``."""
    out = {}
    for c in np.unique(labels[labels >= 0]):  # -1: untuned units, no cluster
        mean = profiles[labels == c].mean(axis=0)
        top = np.argsort(-np.abs(mean))[:n]
        out[int(c)] = [(int(d), float(mean[d])) for d in top]
    return out

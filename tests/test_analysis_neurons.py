"""Latent <-> neuron statistics against closed forms, scipy references and planted structure."""

import numpy as np
import pytest
from scipy import stats

from mmneuro.analysis.neurons import (
    cluster_profiles, correlation, defining_latents, deviance_explained, encoding_model, fdr_bh,
    poisson_deviance, shuffle_null_pvalues)


def test_correlation_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    y[:, 0] += x[:, 1] ** 3
    for method, ref in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        r = correlation(x, y, method)
        for a in range(3):
            for b in range(2):
                assert r[a, b] == pytest.approx(ref(x[:, a], y[:, b])[0], abs=1e-12)
    assert correlation(x, np.ones((50, 1)))[:, 0] == pytest.approx(0.0)  # constant column -> 0, not NaN


@pytest.mark.parametrize("null", ["permutation", "circular"])
def test_shuffle_null_separates_planted_from_independent(null):
    rng = np.random.default_rng(1)
    n = 200
    x = rng.normal(size=(n, 40))
    y = np.column_stack([x[:, 0] + 0.5 * rng.normal(size=n), rng.normal(size=n)])
    groups = np.repeat([0, 1], n // 2)
    r, p = shuffle_null_pvalues(x, y, null=null, n_permutations=199, groups=groups, seed=0)
    assert r[0, 0] > 0.8 and p[0, 0] == pytest.approx(1 / 200)
    # independent pairs: p roughly uniform (mean 0.5, ~5% below 0.05)
    independent = p[1:, 1]
    assert 0.35 < independent.mean() < 0.65
    assert (independent < 0.05).mean() < 0.2
    # same seed, same answer
    np.testing.assert_array_equal(p, shuffle_null_pvalues(x, y, null=null, n_permutations=199,
                                                          groups=groups, seed=0)[1])


def test_fdr_bh_hand_example():
    # sorted p .005 .01 .03 .04, m=4: p*m/rank = .02 .02 .04 .04, running min from the top -> same
    q = fdr_bh(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(q, [0.02, 0.04, 0.04, 0.02])
    # step-up: a larger p at a later rank can lower earlier q-values
    np.testing.assert_allclose(fdr_bh(np.array([0.02, 0.03])), [0.03, 0.03])
    assert fdr_bh(np.array([[0.9, 1.0]])).shape == (1, 2)


def test_poisson_deviance_closed_form():
    y, mu = np.array([[0.0], [2.0], [5.0]]), np.array([[1.0], [2.0], [4.0]])
    expected = 2 * ((0 - (0 - 1)) + 0 + (5 * np.log(5 / 4) - 1))
    assert poisson_deviance(y, mu)[0] == pytest.approx(expected)
    assert deviance_explained(y, y)[0] == pytest.approx(1.0)
    assert deviance_explained(y, np.full_like(y, y.mean()))[0] == pytest.approx(0.0)


@pytest.mark.parametrize("kind", ["poisson", "ridge"])
def test_encoding_model_recovers_planted_glm(kind):
    rng = np.random.default_rng(2)
    n = 600
    z = rng.normal(size=(n, 4))
    exposure = rng.uniform(0.05, 0.2, n)
    rate = np.column_stack([np.exp(2.5 + 0.8 * z[:, 0] - 0.5 * z[:, 2]), np.full(n, 10.0)])
    counts = rng.poisson(rate * exposure[:, None])
    out = encoding_model(z, counts, exposure, kind=kind, alpha=1.0, folds=5, seed=0)
    expected_true = rate * exposure[:, None]
    # ridge fits the exponential with a line, so it tracks the truth less closely than the GLM
    assert np.corrcoef(out["pred"][:, 0], expected_true[:, 0])[0, 1] > (0.95 if kind == "poisson" else 0.8)
    # the tuned unit is explained, the untuned one is not (out-of-fold, so ~0 or slightly below)
    assert out["deviance_explained"][0] > 0.3 and abs(out["deviance_explained"][1]) < 0.05
    if kind == "poisson":
        # the true model's deviance explained is the ceiling; CV estimate gets close to it
        ceiling = deviance_explained(counts[:, :1], expected_true[:, :1],
                                     np.outer(exposure, counts[:, 0].sum() / exposure.sum()))[0]
        assert out["deviance_explained"][0] == pytest.approx(ceiling, abs=0.05)


def test_clusters_recover_planted_profiles():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(3)
    centroids = np.array([[0.6, 0, 0, 0], [0, -0.5, 0.3, 0], [0, 0, 0, 0.7], [0, 0, 0, 0]])
    planted = np.repeat(np.arange(4), 6)
    profiles = centroids[planted] + 0.05 * rng.normal(size=(24, 4))
    out = cluster_profiles(profiles, max_clusters=8)
    assert out["k"] == 4 and adjusted_rand_score(planted, out["labels"]) == 1.0
    assert max(out["silhouette"], key=out["silhouette"].get) == 4
    fixed = cluster_profiles(profiles, n_clusters=2)
    assert fixed["k"] == 2 and fixed["silhouette"] == {}
    # defining latents: the centroid's largest entries, with their sign
    lab = out["labels"]
    top = defining_latents(profiles, lab, n=2)
    second = int(lab[planted == 1][0])
    assert [d for d, _ in top[second]] == [1, 2] and top[second][0][1] < -0.4


def test_batched_poisson_glm_matches_sklearn_per_unit():
    """The batched Newton fit equals sklearn's PoissonRegressor on each unit (same penalised objective)."""
    from sklearn.linear_model import PoissonRegressor

    from mmneuro.analysis.neurons import _poisson_glm

    rng = np.random.default_rng(3)
    n, d, units = 300, 4, 3
    z = rng.normal(size=(n, d))
    exposure = rng.uniform(0.05, 0.3, n)
    w = rng.normal(0, 0.6, (d, units))
    y = rng.poisson(np.exp(1.5 + z @ w) * exposure[:, None]).astype(float)
    y[:, 2] = 0.0  # a silent unit must stay finite
    alpha = 2.0
    x = np.column_stack([np.ones(n), z])
    beta = _poisson_glm(x, y, np.log(exposure), alpha)
    assert np.all(np.isfinite(beta))
    for u in range(2):
        # sklearn minimises (1/sum(w)) * NLL + alpha_s/2 ||w||^2 on the rate with weights = exposure
        ref = PoissonRegressor(alpha=alpha / exposure.sum(), tol=1e-10, max_iter=1000)
        ref.fit(z, y[:, u] / exposure, sample_weight=exposure)
        np.testing.assert_allclose(beta[1:, u], ref.coef_, atol=1e-4)
        np.testing.assert_allclose(beta[0, u], ref.intercept_, atol=1e-4)


def test_fdr_bh_equals_scipy_up_to_rounding():
    from scipy.stats import false_discovery_control

    p = np.random.default_rng(0).integers(1, 1001, (16, 60)) / 1001
    np.testing.assert_allclose(fdr_bh(p), false_discovery_control(p, axis=None).reshape(p.shape), rtol=1e-14)

"""The conditional log-likelihood estimator against the closed form of a linear-Gaussian model."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal

from mmneuro.analysis.synergy import conditional_log_likelihood, synergy_table
from mmneuro.models.fusion import DiagGaussian, product_of_experts
from mmneuro.models import Posterior

W = {"a": torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, 0.1]]), "b": torch.tensor([[0.7, -1.0]])}
SIGMA = {"a": 0.4, "b": 0.6}


class LinearGaussianModel:
    """Encoders: fixed Gaussians with mean A_m x_m; decoders: x_m ~ N(W_m z, sigma_m^2 I); PoE fusion."""

    modalities = ["a", "b"]

    def encode(self, x, present=None):
        means, logvars, masks = [], [], []
        n = len(next(iter(x.values())))
        for m in self.modalities:
            if m in x:
                means.append(x[m] @ W[m] * 0.5)
                logvars.append(torch.full((n, 2), math.log(0.3 if m == "a" else 0.5)))
                masks.append(torch.ones(n, dtype=torch.bool))
            else:
                means.append(torch.zeros(n, 2))
                logvars.append(torch.zeros(n, 2))
                masks.append(torch.zeros(n, dtype=torch.bool))
        experts = DiagGaussian(torch.stack(means), torch.stack(logvars))
        fused = product_of_experts(experts, torch.stack(masks), prior_expert=True)
        return Posterior(fused, {}, {})

    def decode(self, z, modalities=None):
        return {m: Independent(Normal(z @ W[m].T, SIGMA[m]), 1) for m in modalities or self.modalities}


def closed_form(model, x, target, given):
    """log E_q[N(x_t; W z, s^2 I)] = log N(x_t; W mu, s^2 I + W diag(var) W^T)."""
    post = model.encode({m: x[m] for m in given})
    out = []
    for i in range(len(x[target])):
        cov = SIGMA[target] ** 2 * torch.eye(W[target].shape[0]) + W[target] @ torch.diag(post.variance[i]) @ W[target].T
        mvn = torch.distributions.MultivariateNormal(W[target] @ post.mean[i], cov)
        out.append(float(mvn.log_prob(x[target][i])))
    return np.array(out)


def test_estimate_converges_to_closed_form():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 2)).astype(np.float32)
    x = {m: (z @ W[m].numpy().T + SIGMA[m] * rng.normal(size=(6, W[m].shape[0]))).astype(np.float32)
         for m in ("a", "b")}
    model = LinearGaussianModel()
    tx = {m: torch.from_numpy(v) for m, v in x.items()}
    for target, given in (("a", ("a", "b")), ("a", ("b",)), ("b", ("b",))):
        est = conditional_log_likelihood(model, x, target, given, k=20000, seed=1, chunk=5000)
        np.testing.assert_allclose(est, closed_form(model, tx, target, given), atol=0.05)
    # deterministic for a seed
    a = conditional_log_likelihood(model, x, "a", ("b",), k=50, seed=3)
    np.testing.assert_array_equal(a, conditional_log_likelihood(model, x, "a", ("b",), k=50, seed=3))


def test_synergy_table_orders_an_informative_model():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 2)).astype(np.float32)
    x = {m: (z @ W[m].numpy().T + SIGMA[m] * rng.normal(size=(200, W[m].shape[0]))).astype(np.float32)
         for m in ("a", "b")}
    table, means = synergy_table(LinearGaussianModel(), x, k=200, seed=0)
    table = table.set_index("target")
    assert means == {}
    assert set(table.index) == {"a", "b"}
    # own modality helps far more than the other one alone
    assert table.loc["a", "self_minus_cross"] > 0 and table.loc["a", "log_p_self"] > table.loc["a", "log_p_cross"]
    assert table.loc["a", "se_self"] > 0


def test_predictive_mean_comes_from_the_same_draws():
    # The mean of p(x_a | z) = W z over the first D of the K draws: W times the mean of those draws,
    # which converges to W E_q[z]; the log-likelihoods are those of the call without means.
    rng = np.random.default_rng(2)
    x = {m: rng.normal(size=(40, W[m].shape[0])).astype(np.float32) for m in ("a", "b")}
    model = LinearGaussianModel()
    plain = conditional_log_likelihood(model, x, "a", ("b",), k=300, seed=4)
    log_lik, mean = conditional_log_likelihood(model, x, "a", ("b",), k=300, seed=4, mean_draws=200)
    np.testing.assert_array_equal(log_lik, plain)
    post = model.encode({"b": torch.from_numpy(x["b"])})
    expected = (post.mean @ W["a"].T).numpy()
    sd = (post.variance @ (W["a"] ** 2).T).sqrt().numpy() / math.sqrt(200)  # Monte Carlo SD of the mean
    assert mean.shape == (40, 3) and np.all(np.abs(mean - expected) < 5 * sd)
    assert np.abs(mean - expected).mean() > 0.05 * sd.mean()  # draws, not the posterior mean itself
    # the scale: dividing by K instead of the 200 draws would give a slope of 2/3 (its noise here ~0.01)
    assert abs(float((mean * expected).sum() / (expected ** 2).sum()) - 1.0) < 0.05
    table, means = synergy_table(model, x, k=300, seed=4, mean_draws=200)
    np.testing.assert_array_equal(means[("a", "b")], mean)
    assert set(means) == {("a", "a"), ("a", "b"), ("b", "b"), ("b", "a")}

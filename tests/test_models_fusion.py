"""PoE / MoE / MoPoE fusion against closed forms, brute-force densities and Monte Carlo."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from mmneuro.models.fusion import (
    DiagGaussian,
    mixture_of_experts,
    mixture_of_products,
    nonempty_subsets,
    product_of_experts,
)

torch.set_num_threads(1)


def _experts(m=3, n=4, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return DiagGaussian(torch.randn(m, n, d, generator=g), torch.randn(m, n, d, generator=g))


def test_poe_matches_closed_form_with_prior():
    q = _experts()
    present = torch.ones(3, 4, dtype=torch.bool)
    poe = product_of_experts(q, present, prior_expert=True)
    precision = 1.0 + (1.0 / q.variance).sum(0)  # prior precision 1
    var = 1.0 / precision
    mean = var * (q.mean / q.variance).sum(0)
    torch.testing.assert_close(poe.variance, var, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(poe.mean, mean, rtol=1e-5, atol=1e-6)


def test_poe_matches_brute_force_density_product_on_grid():
    mus, logvars = [0.7, -1.2], [math.log(0.5), math.log(2.0)]
    q = DiagGaussian(torch.tensor(mus).view(2, 1, 1), torch.tensor(logvars).view(2, 1, 1))
    poe = product_of_experts(q, torch.ones(2, 1, dtype=torch.bool), prior_expert=True)
    grid = np.linspace(-10, 10, 200001)
    log_dens = -0.5 * grid**2  # the N(0, 1) prior expert
    for mu, lv in zip(mus, logvars):
        log_dens += -0.5 * (grid - mu) ** 2 / math.exp(lv)
    dens = np.exp(log_dens - log_dens.max())
    dens /= np.trapezoid(dens, grid)
    mean = np.trapezoid(grid * dens, grid)
    var = np.trapezoid((grid - mean) ** 2 * dens, grid)
    assert float(poe.mean) == pytest.approx(mean, abs=1e-5)
    assert float(poe.variance) == pytest.approx(var, rel=1e-5)


def test_poe_of_one_expert_and_prior():
    mu, var = torch.tensor([[[1.5]]]), torch.tensor([[[3.0]]])
    poe = product_of_experts(DiagGaussian(mu, var.log()), torch.ones(1, 1, dtype=torch.bool))
    assert float(poe.variance) == pytest.approx(3.0 / 4.0, rel=1e-6)  # σ²/(1+σ²)
    assert float(poe.mean) == pytest.approx(1.5 / 4.0, rel=1e-6)  # μ/(1+σ²)


def test_missing_modality_equals_poe_of_the_rest_even_with_nan_parameters():
    q = _experts()
    present = torch.ones(3, 4, dtype=torch.bool)
    present[1, :2] = False
    corrupted = DiagGaussian(q.mean.clone(), q.logvar.clone())
    corrupted.mean[1, :2] = math.nan
    corrupted.logvar[1, :2] = math.nan
    poe = product_of_experts(corrupted, present)
    rest = product_of_experts(q[[0, 2]], torch.ones(2, 4, dtype=torch.bool))
    torch.testing.assert_close(poe.mean[:2], rest.mean[:2])
    torch.testing.assert_close(poe.logvar[:2], rest.logvar[:2])
    full = product_of_experts(q, torch.ones(3, 4, dtype=torch.bool))
    torch.testing.assert_close(poe.mean[2:], full.mean[2:])

def test_poe_without_prior_expert_and_no_expert_present_is_a_finite_placeholder():
    """Sample 0 has no expert: N(0, I) with finite gradients (the softmax over all −inf was NaN);
    sample 1 is the PoE of its one expert, untouched by the placeholder."""
    mean = torch.randn(2, 2, 3, requires_grad=True)
    logvar = torch.randn(2, 2, 3, requires_grad=True)
    present = torch.tensor([[False, True], [False, False]])
    poe = product_of_experts(DiagGaussian(mean, logvar), present, prior_expert=False)
    torch.testing.assert_close(poe.mean[0], torch.zeros(3))
    torch.testing.assert_close(poe.logvar[0], torch.zeros(3))
    torch.testing.assert_close(poe.mean[1], mean[0, 1])
    torch.testing.assert_close(poe.logvar[1], logvar[0, 1])
    g_mean, g_logvar = torch.autograd.grad((poe.mean + poe.logvar).sum(), [mean, logvar])
    assert torch.isfinite(g_mean).all() and torch.isfinite(g_logvar).all()
    assert float(g_mean[:, 0].abs().sum() + g_logvar[:, 0].abs().sum()) == 0.0



@pytest.mark.parametrize("value", [50.0, -50.0])
def test_poe_and_mixtures_stay_finite_for_extreme_logvars(value):
    q = DiagGaussian(torch.randn(2, 3, 4) * 1e3, torch.full((2, 3, 4), value))
    q.logvar[1] = -value
    present = torch.ones(2, 3, dtype=torch.bool)
    for post in (product_of_experts(q, present), mixture_of_experts(q, present), mixture_of_products(q, present)):
        assert torch.isfinite(post.mean).all() and torch.isfinite(post.variance).all()
    poe = product_of_experts(q, present)
    assert torch.isfinite(poe.kl_to_standard_normal()).all()
    assert torch.isfinite(poe.log_prob(poe.rsample(3))).all()


def test_kl_to_standard_normal_matches_torch():
    q = _experts(m=1, n=5, d=3)[0]
    ref = kl_divergence(Independent(Normal(q.mean, q.stddev), 1), Independent(Normal(0.0, torch.ones(3)), 1))
    torch.testing.assert_close(q.kl_to_standard_normal(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(q.log_prob(q.mean * 0.3), Independent(Normal(q.mean, q.stddev), 1).log_prob(q.mean * 0.3))


def test_moe_weights_moments_and_stratified_sampling():
    q = _experts(m=2, n=3, d=2)
    present = torch.tensor([[True, True, True], [True, False, True]])
    moe = mixture_of_experts(q, present)
    torch.testing.assert_close(moe.weights, torch.tensor([[0.5, 1.0, 0.5], [0.5, 0.0, 0.5]]))
    k = 20000
    z = moe.stratified_rsample(k, generator=torch.Generator().manual_seed(1))
    assert z.shape == (2, k, 3, 2)  # exactly K draws from every expert
    for c in range(2):  # each stratum is distributed as its own expert
        torch.testing.assert_close(z[c].mean(0), q.mean[c], atol=5 * float(q.stddev.max()) / math.sqrt(k), rtol=0)
    # sample 1 lacks expert 1: the mixture is expert 0 alone
    torch.testing.assert_close(moe.mean[1], q.mean[0, 1])
    torch.testing.assert_close(moe.variance[1], q.variance[0, 1])
    # mixture moments vs ancestral samples
    draws = moe.sample(200000, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(draws.mean(0), moe.mean, atol=0.03, rtol=0)
    torch.testing.assert_close(draws.var(0), moe.variance, rtol=0.03, atol=0.01)
    # log density of the mixture = log of the average of the component densities
    zz = torch.randn(5, 3, 2)
    ref = torch.logsumexp(torch.stack([q[c].log_prob(zz) for c in range(2)]), 0) - math.log(2)
    torch.testing.assert_close(moe.log_prob(zz)[:, [0, 2]], ref[:, [0, 2]])
    torch.testing.assert_close(moe.log_prob(zz)[:, 1], q[0].log_prob(zz)[:, 1])


def test_mopoe_components_are_subset_products():
    q = _experts(m=3, n=2, d=2)
    present = torch.tensor([[True, True], [True, False], [True, True]])
    mix = mixture_of_products(q, present)
    subsets = nonempty_subsets(3)
    assert len(subsets) == 7
    for c, subset in enumerate(subsets):
        mask = torch.zeros(3, 2, dtype=torch.bool)
        mask[list(subset)] = True
        ref = product_of_experts(q, mask, prior_expert=False)
        torch.testing.assert_close(mix.components.mean[c], ref.mean)
        torch.testing.assert_close(mix.components.logvar[c], ref.logvar)
    # sample 0 has all 3 modalities: 7 components; sample 1 lacks modality 1: subsets of {0, 2} = 3
    torch.testing.assert_close(mix.weights.sum(0), torch.ones(2))
    assert int((mix.weights[:, 0] > 0).sum()) == 7 and int((mix.weights[:, 1] > 0).sum()) == 3
    assert all(mix.weights[c, 1] == 0 for c, s in enumerate(subsets) if 1 in s)

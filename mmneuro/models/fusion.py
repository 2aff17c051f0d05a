"""Fusion of unimodal Gaussian posteriors: product (PoE), mixture (MoE) and mixture of products (MoPoE).

Every fusion takes the unimodal posteriors stacked along a leading *expert* axis,
``mean``/``logvar`` of shape (M, N, D), and a presence mask (M, N) bool, so one batch can mix
complete and incomplete samples. Fusion acts on the last (latent) axis elementwise, so a later
shared/private split of z only has to pass the shared slice here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class DiagGaussian:
    """A diagonal Gaussian over the last axis: ``mean`` and ``logvar`` of the same shape (..., D)."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def variance(self) -> torch.Tensor:
        return self.logvar.exp()

    @property
    def stddev(self) -> torch.Tensor:
        return (0.5 * self.logvar).exp()

    def rsample(self, k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised samples; shape (k, ..., D), or (..., D) when k is None."""
        shape = self.mean.shape if k is None else (k, *self.mean.shape)
        eps = torch.randn(shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.stddev * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; mean, var) summed over the latent axis; z broadcasts against (..., D)."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.mean) ** 2 * (-self.logvar).exp()).sum(-1)

    def detach(self) -> "DiagGaussian":
        return DiagGaussian(self.mean.detach(), self.logvar.detach())

    def kl_to_standard_normal(self) -> torch.Tensor:
        """KL(q || N(0, I)) = ½ Σ (σ² + μ² − 1 − log σ²) (Kingma & Welling 2014, App. B), shape (...)."""
        return 0.5 * (self.variance + self.mean**2 - 1.0 - self.logvar).sum(-1)

    def __getitem__(self, index) -> "DiagGaussian":
        return DiagGaussian(self.mean[index], self.logvar[index])


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def product_of_experts(experts: DiagGaussian, present: torch.Tensor, prior_expert: bool = True) -> DiagGaussian:
    """PoE of the present experts, computed in log space.

    experts: mean/logvar (M, N, D); present: (M, N) bool. With ``prior_expert`` a N(0, I) expert
    is included (Wu & Goodman 2018). A sample with no present expert gets N(0, I) either way; without
    the prior expert that is a placeholder the caller must mask (the empty product has no density,
    and the softmax over all −inf it would take is NaN, which masking the result cannot keep out
    of the gradient).
    log σ² = −logsumexp_i(−log σ²_i); μ = σ² Σ_i μ_i/σ²_i = Σ_i softmax_i(−log σ²) μ_i, which
    never forms 1/σ² and so stays finite for any log-variance. A missing expert gets precision
    exp(−inf) = 0 and contributes nothing (its mean, even NaN, is masked out).
    """
    neg_logvar = torch.where(present.unsqueeze(-1), -experts.logvar, -math.inf)
    mean = torch.where(present.unsqueeze(-1), experts.mean, 0.0)
    use_prior = (~present.any(0) | prior_expert).unsqueeze(-1)  # (N, 1)
    neg_logvar = torch.cat([neg_logvar, torch.zeros_like(neg_logvar[:1]).masked_fill(~use_prior, -math.inf)], 0)
    mean = torch.cat([mean, torch.zeros_like(mean[:1])], 0)
    log_precision = torch.logsumexp(neg_logvar, 0)
    weights = torch.softmax(neg_logvar, 0)
    return DiagGaussian((weights * mean).sum(0), -log_precision)


@dataclass
class MixturePosterior:
    """A mixture of diagonal Gaussians: components (C, N, D) with weights (C, N) summing to 1 over C.

    ``mean``/``variance`` are the mixture's moments; a component with weight 0 is absent.
    """

    components: DiagGaussian
    weights: torch.Tensor

    @property
    def present(self) -> torch.Tensor:
        return self.weights > 0

    def _expect(self, values: torch.Tensor) -> torch.Tensor:
        """Σ_c w_c values_c over (C, N, D); absent components are masked, so their values never leak."""
        w = self.weights.unsqueeze(-1)
        return torch.where(w > 0, w * values, 0.0).sum(0)

    @property
    def mean(self) -> torch.Tensor:
        return self._expect(self.components.mean)

    @property
    def variance(self) -> torch.Tensor:
        # law of total variance: E[σ²_c + μ²_c] − (E[μ_c])²
        second = self._expect(self.components.variance + self.components.mean**2)
        return (second - self.mean**2).clamp_min(0.0)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log Σ_c w_c q_c(z) for z of shape (..., N, D); returns (..., N)."""
        lq = self.components.log_prob(z.unsqueeze(-3))  # (..., C, N)
        return torch.logsumexp(torch.where(self.present, lq + self.weights.log(), -math.inf), -2)

    def sample(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """K ancestral samples (pick c ~ α, then z ~ q_c), not reparameterised: (K, N, D)."""
        c, n = self.weights.shape
        idx = torch.multinomial(self.weights.T, k, replacement=True, generator=generator).T  # (K, N)
        comp = self.components
        gather = idx.unsqueeze(-1).expand(k, n, comp.mean.shape[-1])
        mean = comp.mean.gather(0, gather)
        std = comp.stddev.gather(0, gather)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + std * eps

    def stratified_rsample(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """K reparameterised samples from *every* component: (C, K, N, D).

        Samples of absent components (weight 0) are drawn too (so shapes stay rectangular) and must
        be given weight 0 by the objective; each present component contributes exactly K samples.
        """
        comp = self.components
        # one (K, N, D) draw per component in order, the same stream as sampling each expert in turn
        eps = torch.stack([torch.randn((k, *comp.mean.shape[1:]), generator=generator, dtype=comp.mean.dtype,
                                       device=comp.mean.device) for _ in range(comp.mean.shape[0])])
        return comp.mean.unsqueeze(1) + comp.stddev.unsqueeze(1) * eps


def nonempty_subsets(m: int) -> list[tuple[int, ...]]:
    """All non-empty subsets of range(m), by size then lexicographic order."""
    return [s for r in range(1, m + 1) for s in itertools.combinations(range(m), r)]


def subset_mixture(experts: DiagGaussian, present: torch.Tensor, subsets: list[tuple[int, ...]],
                   prior_expert: bool = False) -> MixturePosterior:
    """Uniform mixture over the PoEs of ``subsets`` of experts that are fully present per sample.

    experts (M, N, D); present (M, N) bool. A subset contributes to sample n only if all its members
    are present there; the weights are uniform over the contributing subsets.
    """
    m = experts.mean.shape[0]
    means, logvars, valid = [], [], []
    for subset in subsets:
        member = torch.zeros(m, dtype=torch.bool, device=present.device)
        member[list(subset)] = True
        if len(subset) == 1 and not prior_expert:
            means.append(experts.mean[subset[0]])
            logvars.append(experts.logvar[subset[0]])
        else:
            mask = member.unsqueeze(1).expand_as(present)
            poe = product_of_experts(experts, mask, prior_expert)
            means.append(poe.mean)
            logvars.append(poe.logvar)
        valid.append(present[member].all(0))
    valid = torch.stack(valid).to(experts.mean.dtype)  # (C, N)
    weights = valid / valid.sum(0, keepdim=True).clamp_min(1.0)
    return MixturePosterior(DiagGaussian(torch.stack(means), torch.stack(logvars)), weights)


def mixture_of_experts(experts: DiagGaussian, present: torch.Tensor) -> MixturePosterior:
    """MoE (Shi et al. 2019): uniform mixture over the present unimodal posteriors."""
    return subset_mixture(experts, present, [(i,) for i in range(experts.mean.shape[0])])


def mixture_of_products(experts: DiagGaussian, present: torch.Tensor, prior_expert: bool = False) -> MixturePosterior:
    """MoPoE (Sutter et al. 2021): uniform mixture over the PoEs of all non-empty present subsets."""
    return subset_mixture(experts, present, nonempty_subsets(experts.mean.shape[0]), prior_expert)

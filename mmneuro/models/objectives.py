"""Training objectives: subset ELBOs (MVAE, MoPoE, VAE) and stratified IWAE with DReG (MMVAE).

Every objective takes the stacked unimodal posteriors (M, N, D), a presence mask (M, N) and a
``log_lik(z, targets)`` callable, and returns the per-sample loss (N,) plus per-sample loss
terms; the caller reduces with the mean over samples (one reduction for every model).

``log_lik(z, targets)``: z (S, N, D), targets (S, M) bool or None (= every modality) → (S, M, N)
weighted log p(x_m | z_s), 0 where not a target or where x_m is missing. Each decoder runs once over all S·N latents.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from mmneuro.models.fusion import (
    DiagGaussian,
    MixturePosterior,
    product_of_experts,
    standard_normal_log_prob,
)

LogLik = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
Terms = dict[str, torch.Tensor]


def subset_elbos(unimodal: DiagGaussian, present: torch.Tensor, log_lik: LogLik, subsets: list[tuple[int, ...]],
                 beta: float, prior_expert: bool = True,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, Terms]:
    """MVAE objective (Wu & Goodman 2018): −Σ_A ELBO(x_A) with q(z | x_A) = PoE of the experts in A.

    ELBO(x_A) = E_q[Σ_{m∈A} log p(x_m | z)] − β KL(q(z | x_A) || N(0, I)), one reparameterised
    sample. A subset counts for a sample only if at least one of its modalities is present there
    (then its missing members are left out of the PoE and the reconstruction).
    Returns (loss (N,), terms with per-sample ``recon_<A>`` and ``kl_<A>``).
    """
    m = present.shape[0]
    member = torch.zeros(len(subsets), m, dtype=torch.bool, device=present.device)
    for s, subset in enumerate(subsets):
        member[s, list(subset)] = True
    masks = member.unsqueeze(-1) & present.unsqueeze(0)  # (S, M, N)
    posts = [product_of_experts(unimodal, mask, prior_expert) for mask in masks]
    post = DiagGaussian(torch.stack([p.mean for p in posts]), torch.stack([p.logvar for p in posts]))
    z = post.rsample(generator=generator)  # (S, N, D)
    recon = log_lik(z, member).sum(1)  # (S, N)
    kl = post.kl_to_standard_normal()
    valid = masks.any(1).to(recon.dtype)
    loss = (valid * (beta * kl - recon)).sum(0)
    terms: Terms = {}
    for s, subset in enumerate(subsets):
        name = "+".join(str(i) for i in subset)
        terms[f"recon_{name}"] = valid[s] * recon[s]
        terms[f"kl_{name}"] = valid[s] * kl[s]
    return loss, terms


def mixture_elbo(mixture: MixturePosterior, log_lik: LogLik, beta: float,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, Terms]:
    """MoPoE objective (Sutter et al. 2021, Eq. 8): −Σ_c α_c [E_{q_c}[log p(X | z)] − β KL(q_c || p)].

    The expectation over the mixture is stratified: one sample from every component c, weighted by
    its mixture weight α_c (exact in the mixture index, lower variance than sampling c).
    The KL of the mixture is bounded by the α-weighted component KLs, as in the paper.
    """
    comps, alpha = mixture.components, mixture.weights  # (C, N, D), (C, N)
    z = comps.rsample(generator=generator)
    recon = log_lik(z, None).sum(1)  # (C, N)
    kl = comps.kl_to_standard_normal()
    recon = _weighted(alpha, recon)
    kl = _weighted(alpha, kl)
    return beta * kl - recon, {"recon": recon, "kl": kl}


def _weighted(alpha: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Σ_c α_c v_c over axis 0, with absent components (α = 0) masked so NaN/inf there cannot leak."""
    return torch.where(alpha > 0, alpha * values, 0.0).sum(0)


def mixture_iwae(mixture: MixturePosterior, log_lik: LogLik, k: int, variant: str = "loose", dreg: bool = True,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, Terms]:
    """Stratified importance-weighted bound for a mixture posterior (MMVAE, Shi et al. 2019).

    K samples z_{c,k} ~ q_c from every present component c, log-weights
    log w = log p(X | z) + log p(z) − log q_mix(z), q_mix = Σ_c α_c q_c.
      * ``loose`` (Shi et al. Eq. 3): Σ_c α_c log (1/K Σ_k w_{c,k}) — the average over the
        modalities outside the log;
      * ``tight`` (stratified IWAE, Morningstar et al. 2021): log Σ_c α_c (1/K) Σ_k w_{c,k}.
    Both are ≤ log p(X); K = 1 with one component is the ELBO.
    ``dreg``: the doubly reparameterised gradient (Tucker et al. 2019), as in Shi et al.'s code:
    q's parameters are detached inside log w, the normalised weights w̃ multiply the loss, and a
    hook multiplies the gradient reaching z once more by w̃ (so encoder gradients carry w̃²).
    The returned loss *value* is always −bound; only its gradient changes with ``dreg``.
    Returns (loss (N,), terms ``bound`` and ``ess`` per sample).
    """
    alpha = mixture.weights  # (C, N)
    c, n = alpha.shape
    z = mixture.stratified_rsample(k, generator=generator)  # (C, K, N, D)
    q = MixturePosterior(mixture.components.detach(), alpha) if dreg else mixture
    log_px = log_lik(z.reshape(c * k, n, -1), None).sum(1).reshape(c, k, n)
    lw = log_px + standard_normal_log_prob(z) - q.log_prob(z)  # (C, K, N)
    present = (alpha > 0).unsqueeze(1)
    # absent components get a finite placeholder (masked below): −inf here would turn the
    # backward pass of logsumexp into 0·NaN
    lw = torch.where(present, lw, 0.0)
    if variant == "loose":
        per_comp = torch.logsumexp(lw, 1) - math.log(k)  # (C, N)
        bound = _weighted(alpha, per_comp)
        log_norm = lw - torch.logsumexp(lw, 1, keepdim=True)
        outer = alpha.unsqueeze(1)
    elif variant == "tight":
        scaled = torch.where(present, lw + alpha.log().unsqueeze(1), -math.inf)
        bound = torch.logsumexp(scaled.flatten(0, 1), 0) - math.log(k)
        log_norm = scaled - torch.logsumexp(scaled.flatten(0, 1), 0)
        outer = torch.ones_like(alpha).unsqueeze(1)
    else:
        raise ValueError(f"unknown IWAE variant {variant!r}; expected 'loose' or 'tight'")
    w_norm = torch.where(present, log_norm.exp(), 0.0).detach()  # (C, K, N)
    ess = 1.0 / (w_norm**2).sum((0, 1)).clamp_min(1e-30)
    if dreg:
        if z.requires_grad:
            z.register_hook(lambda grad: grad * w_norm.unsqueeze(-1))
        surrogate = torch.where(present, outer * w_norm * lw, 0.0).sum((0, 1))
        loss = -(surrogate + (bound - surrogate).detach())
    else:
        loss = -bound
    return loss, {"bound": bound.detach(), "ess": ess}

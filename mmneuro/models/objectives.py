"""Training objectives: subset ELBOs (MVAE, MoPoE, VAE), stratified IWAE with DReG (MMVAE) and the
shared-posterior agreement penalty of factorised models.

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
                 beta: float, prior_expert: bool = True, generator: torch.Generator | None = None,
                 complete: Callable[[DiagGaussian, torch.Tensor], DiagGaussian] | None = None,
                 cross: bool | torch.Tensor = False) -> tuple[torch.Tensor, Terms]:
    """MVAE objective (Wu & Goodman 2018): −Σ_A ELBO(x_A) with q(z | x_A) = PoE of the experts in A.

    ELBO(x_A) = E_q[Σ_{m∈A} log p(x_m | z)] − β KL(q(z | x_A) || N(0, I)), one reparameterised
    sample. A subset counts for a sample only if at least one of its modalities is present there
    (then its missing members are left out of the PoE and the reconstruction). ``cross``: every
    present modality is reconstructed from every subset (``mvae_cross_reconstruction``), not only A's;
    a (M,) bool mask: the masked modalities from every subset, besides A's.

    ``complete(q_shared (S, N, D_s), members (S, M, N)) -> q (S, N, D_total)`` (factorised models):
    extends each subset's PoE by the private posteriors of its members and the prior for the rest;
    then every present modality is reconstructed from every subset (the cross terms of MMVAE+ /
    DMVAE, Lee & Pavlovic 2021), which is what pushes the information the modalities share into
    z_shared. ELBO(x_A) then bounds log p(x_1..x_M) with q(z_s | x_A) Π_{m∈A} q(w_m | x_m) Π_{m∉A} p(w_m).
    Returns (loss (N,), terms with per-sample ``recon_<A>`` and ``kl_<A>``).
    """
    m = present.shape[0]
    member = torch.zeros(len(subsets), m, dtype=torch.bool, device=present.device)
    for s, subset in enumerate(subsets):
        member[s, list(subset)] = True
    masks = member.unsqueeze(-1) & present.unsqueeze(0)  # (S, M, N)
    posts = [product_of_experts(unimodal, mask, prior_expert) for mask in masks]
    post = DiagGaussian(torch.stack([p.mean for p in posts]), torch.stack([p.logvar for p in posts]))
    if complete is not None:
        post = complete(post, masks)
    z = post.rsample(generator=generator)  # (S, N, D)
    if torch.is_tensor(cross):
        targets = None if complete is not None else member | cross
    else:
        targets = None if cross or complete is not None else member
    recon = log_lik(z, targets).sum(1)  # (S, N)
    kl = post.kl_to_standard_normal()
    valid = masks.any(1)  # (S, N); product_of_experts keeps the invalid entries finite
    loss = torch.where(valid, beta * kl - recon, 0.0).sum(0)
    terms: Terms = {}
    for s, subset in enumerate(subsets):
        name = "+".join(str(i) for i in subset)
        terms[f"recon_{name}"] = torch.where(valid[s], recon[s], 0.0)
        terms[f"kl_{name}"] = torch.where(valid[s], kl[s], 0.0)
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

    ``dreg``: doubly reparameterised gradients (Tucker et al. 2019). Both bounds have the encoder
    gradient Σ_{c,k} ω_{c,k} ∇ log w_{c,k}, ω = α_c w̃ (loose, w̃ normalised within stratum c) or
    w̃ (tight, normalised over all C·K samples). As z_{c,k} ~ q_c, only the own term r_c ∇_φ log q_c
    of ∇_φ log q_mix(z_{c,k}) = Σ_c' r_c' ∇_φ log q_c' (r_c = α_c q_c/q_mix) is a score of the
    sampling density; Tucker's identity E_q[f ∇_φ log q] = E[∇_z f ∂z/∂φ] with f = ω r_c turns it
    pathwise, and the other components keep their direct gradient. Hence, per stratum: q_c is
    detached in log q_mix, the hook at z multiplies by 1 − r_c(1 − w̃), plus the pathwise term
    −ω r_c ∇_z log r_c. One component: w̃², the usual DReG. Shi et al.'s code detaches every q_c
    (``m_dreg``, ``m_dreg_looser``), which is biased for both bounds: stratified samples are not
    draws from q_mix (tests/test_models_objectives.py measures it).
    The returned loss *value* is always −bound; only its gradient changes with ``dreg``.
    Returns (loss (N,), terms per sample: ``bound`` and ``ess``, the effective sample size of each
    stratum's K weights, (Σ_k w_{c,k})² / Σ_k w_{c,k}² (Kong 1992), averaged with α over the strata:
    in [1, K], K when every expert's weights are equal, 1 when one sample per stratum dominates).
    """
    if variant not in ("loose", "tight"):
        raise ValueError(f"unknown IWAE variant {variant!r}; expected 'loose' or 'tight'")
    alpha = mixture.weights  # (C, N)
    c, n = alpha.shape
    present = alpha > 0
    log_alpha = torch.where(present, alpha.log(), -math.inf)
    comps = mixture.components
    z = mixture.stratified_rsample(k, generator=generator)  # (C, K, N, D)
    z_lw = z.clone() if dreg else z  # the path into log w, where the DReG hook sits
    lq = comps.log_prob(z_lw.unsqueeze(-3))  # (C strata, K, C components, N)
    if dreg:
        lq_detached = comps.detach().log_prob(z_lw.unsqueeze(-3))
        own = torch.eye(c, dtype=torch.bool, device=z.device).view(c, 1, c, 1)
        lq = torch.where(own, lq_detached, lq)
    log_q_mix = torch.logsumexp(lq + log_alpha, 2)  # (C, K, N)
    log_px = log_lik(z_lw.reshape(c * k, n, -1), None).sum(1).reshape(c, k, n)
    # absent strata get a finite placeholder (masked below): −inf here would turn the backward
    # pass of logsumexp into 0·NaN
    stratum = present.unsqueeze(1)
    lw = torch.where(stratum, log_px + standard_normal_log_prob(z_lw) - log_q_mix, 0.0)
    if variant == "loose":
        bound = _weighted(alpha, torch.logsumexp(lw, 1) - math.log(k))
        log_norm = lw - torch.logsumexp(lw, 1, keepdim=True)
        outer = alpha.unsqueeze(1)
    else:
        scaled = torch.where(stratum, lw + log_alpha.unsqueeze(1), -math.inf)
        bound = torch.logsumexp(scaled.flatten(0, 1), 0) - math.log(k)
        log_norm = scaled - bound.unsqueeze(0) - math.log(k)
        outer = torch.ones_like(alpha).unsqueeze(1)
    w_norm = torch.where(stratum, log_norm.exp(), 0.0).detach()  # (C, K, N)
    within = (lw - torch.logsumexp(lw, 1, keepdim=True)).detach()  # weights normalised per stratum
    ess = _weighted(alpha, 1.0 / torch.exp(2.0 * within).sum(1))
    if not dreg:
        return -bound, {"bound": bound.detach(), "ess": ess}
    surrogate = torch.where(stratum, outer * w_norm * lw, 0.0).sum((0, 1))
    lq_z = comps.detach().log_prob(z.unsqueeze(-3))  # only z carries gradient here
    own_lq = torch.diagonal(lq_z, dim1=0, dim2=2).permute(2, 0, 1)  # (C, K, N): log q_c(z_{c,k})
    log_r = torch.where(stratum, log_alpha.unsqueeze(1) + own_lq - torch.logsumexp(lq_z + log_alpha, 2), 0.0)
    r = log_r.exp().detach()
    factor = 1.0 - r * (1.0 - w_norm)
    surrogate = surrogate - torch.where(stratum, outer * w_norm * r * log_r, 0.0).sum((0, 1))
    if z_lw.requires_grad:
        z_lw.register_hook(lambda grad: grad * factor.unsqueeze(-1))
    loss = -(surrogate + (bound - surrogate).detach())
    return loss, {"bound": bound.detach(), "ess": ess}


def shared_disagreement(unimodal: DiagGaussian, present: torch.Tensor) -> torch.Tensor:
    """Per sample (N,): mean over modality pairs present together of the symmetric KL
    ½[KL(q_i || q_j) + KL(q_j || q_i)] between unimodal shared posteriors (M, N, D); 0 without a pair.

    Symmetric KL of diagonal Gaussians: ¼ Σ_d [(σ²_i + (μ_i−μ_j)²)/σ²_j + (σ²_j + (μ_i−μ_j)²)/σ²_i − 2].
    """
    total = torch.zeros(present.shape[1], device=present.device)
    pairs = torch.zeros_like(total)
    for i in range(present.shape[0]):
        for j in range(i + 1, present.shape[0]):
            a, b = unimodal[i], unimodal[j]
            sq = (a.mean - b.mean) ** 2
            sym = 0.25 * ((a.variance + sq) * (-b.logvar).exp() + (b.variance + sq) * (-a.logvar).exp() - 2).sum(-1)
            both = present[i] & present[j]
            total = total + torch.where(both, sym, 0.0)
            pairs = pairs + both.to(total.dtype)
    return total / pairs.clamp_min(1.0)

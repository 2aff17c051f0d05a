"""Observation models p(x_m | z): map a decoder's output tensor to a log-likelihood and a distribution.

Each likelihood takes the decoder output ``out`` (..., *event_shape) and data ``x`` broadcastable to
it, and returns log p(x | out) summed over the event axes (the trailing ``event_ndim`` axes).
Log-likelihoods are written out in closed form (fewer temporaries than ``torch.distributions``,
which materialises a broadcast scale the size of the image); tests check them against
``torch.distributions`` and scipy.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Independent, Laplace, NegativeBinomial, Normal, Poisson
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)
# Poisson/NB rates are floored so log(rate) is finite for any decoder output.
RATE_FLOOR = 1e-6
# exp link: clamp the log-rate so exp() cannot overflow float32 (e^20 ≈ 5e8 spikes per bin).
MAX_LOG_RATE = 20.0


class Likelihood(nn.Module):
    """Base class. ``event_ndim`` trailing axes of the decoder output form one observation."""

    def __init__(self, event_ndim: int):
        super().__init__()
        self.event_ndim = event_ndim

    def _sum_event(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:  # unobserved elements (another session's units) add nothing
            values = torch.where(mask, values, 0.0)
        return values.flatten(-self.event_ndim).sum(-1)

    def _count_event(self, out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | int:
        """The number of (observed) elements per observation."""
        if mask is None:
            return math.prod(out.shape[out.dim() - self.event_ndim:])
        return mask.flatten(-self.event_ndim).sum(-1)

    def log_prob(self, out: torch.Tensor, x: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        """log p(x | out) summed over the event axes; ``mask`` (broadcastable to x, bool): the
        observed elements, the only ones summed (default: all)."""
        raise NotImplementedError

    def distribution(self, out: torch.Tensor) -> torch.distributions.Distribution:  # pragma: no cover
        raise NotImplementedError

    def output_for_data(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, *event) → the decoder output (*event) whose distribution has x's mean (inverse link);
        NaN elements (unobserved) are left out of the mean."""
        return x.nanmean(0).nan_to_num(0.0) if x.isnan().any() else x.mean(0)


class _LocationScale(Likelihood):
    """Gaussian/Laplace with the decoder output as location and one scale per modality.

    ``scale`` is the fixed (or initial, if ``learn_scale``) standard deviation / Laplace scale.
    """

    def __init__(self, event_ndim: int, scale: float = 0.1, learn_scale: bool = False):
        super().__init__(event_ndim)
        log_scale = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return out


class GaussianLikelihood(_LocationScale):
    def log_prob(self, out, x, mask=None):
        # log N(x; μ, s²) = −(x−μ)²/(2s²) − log s − ½ log 2π, summed over the n event elements
        n = self._count_event(out, mask)
        sq = self._sum_event((x - out) ** 2, mask)
        return -0.5 * sq * torch.exp(-2.0 * self.log_scale) - n * (self.log_scale + 0.5 * LOG_2PI)

    def distribution(self, out):
        return Independent(Normal(out, self.log_scale.exp()), self.event_ndim)


class LaplaceLikelihood(_LocationScale):
    def log_prob(self, out, x, mask=None):
        # log Laplace(x; μ, b) = −|x−μ|/b − log 2b
        n = self._count_event(out, mask)
        return (-self._sum_event((x - out).abs(), mask) * torch.exp(-self.log_scale)
                - n * (self.log_scale + math.log(2.0)))

    def distribution(self, out):
        return Independent(Laplace(out, self.log_scale.exp()), self.event_ndim)


def _log_rate(out: torch.Tensor, link: str) -> torch.Tensor:
    if link == "exp":
        return out.clamp(max=MAX_LOG_RATE)
    return torch.log(F.softplus(out) + RATE_FLOOR)


def _output_for_counts(x: torch.Tensor, link: str) -> torch.Tensor:
    """Decoder output whose rate is the mean count of x (N, *event), with half a count added to each
    element's total: an element silent in all N samples gets rate 0.5/N, not a rate whose softplus
    gradient (≈ rate) is dead."""
    n = torch.isfinite(x).sum(0).clamp(min=1) if x.isnan().any() else x.shape[0]  # NaN: an unobserved element
    rate = (x.nansum(0) + 0.5) / n
    if link == "exp":
        return rate.log()
    rate = rate - RATE_FLOOR
    return rate + torch.log(-torch.expm1(-rate))  # softplus⁻¹, stable for small and large rates


class PoissonLikelihood(Likelihood):
    """Poisson counts with rate = softplus(out) + 1e-6 (default) or exp(out)."""

    def __init__(self, event_ndim: int, link: str = "softplus"):
        super().__init__(event_ndim)
        self.link = link

    def mean(self, out):
        return _log_rate(out, self.link).exp()

    def output_for_data(self, x):
        return _output_for_counts(x, self.link)

    def log_prob(self, out, x, mask=None):
        # log Poi(x; λ) = x log λ − λ − log x!  (exact for integer counts)
        log_rate = _log_rate(out, self.link)
        return self._sum_event(x * log_rate - log_rate.exp() - torch.lgamma(x + 1.0), mask)

    def distribution(self, out):
        return Independent(Poisson(self.mean(out), validate_args=False), self.event_ndim)


class NegativeBinomialLikelihood(Likelihood):
    """Negative binomial with mean μ = link(out) and a learned dispersion r per event element.

    Var = μ + μ²/r (r → ∞ recovers Poisson). ``event_shape`` sizes the dispersion parameter.
    """

    def __init__(self, event_shape: tuple[int, ...], link: str = "softplus", dispersion: float = 10.0):
        super().__init__(len(event_shape))
        self.link = link
        self.log_dispersion = nn.Parameter(torch.full(tuple(event_shape), math.log(dispersion)))

    def mean(self, out):
        return _log_rate(out, self.link).exp()

    def output_for_data(self, x):
        return _output_for_counts(x, self.link)

    def log_prob(self, out, x, mask=None):
        # log NB(x; μ, r) = lgamma(x+r) − lgamma(r) − lgamma(x+1) + r log(r/(r+μ)) + x log(μ/(r+μ))
        log_mu = _log_rate(out, self.link)
        log_r = self.log_dispersion
        r = log_r.exp()
        log_r_plus_mu = torch.logaddexp(log_r, log_mu)
        terms = (torch.lgamma(x + r) - torch.lgamma(r) - torch.lgamma(x + 1.0)
                 + r * (log_r - log_r_plus_mu) + x * (log_mu - log_r_plus_mu))
        return self._sum_event(terms, mask)

    def distribution(self, out):
        # torch's NB counts successes with success logit log(μ/r), so its mean is r·μ/r = μ
        logits = _log_rate(out, self.link) - self.log_dispersion
        r = self.log_dispersion.exp().expand_as(logits)
        return Independent(NegativeBinomial(total_count=r, logits=logits, validate_args=False), self.event_ndim)


LIKELIHOODS = ("gaussian", "laplace", "poisson", "negbinom")


def make_likelihood(name: str, event_shape: tuple[int, ...], params: dict | None = None) -> Likelihood:
    """Build a likelihood by name for observations of ``event_shape``; ``params`` are its keyword options."""
    params = dict(params or {})
    if name == "gaussian":
        return GaussianLikelihood(len(event_shape), **params)
    if name == "laplace":
        return LaplaceLikelihood(len(event_shape), **params)
    if name == "poisson":
        return PoissonLikelihood(len(event_shape), **params)
    if name == "negbinom":
        return NegativeBinomialLikelihood(tuple(event_shape), **params)
    raise ValueError(f"unknown likelihood {name!r}; expected one of {LIKELIHOODS}")

"""The posterior a model's ``encode`` returns, over the whole latent z = (shared, private parts)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mmneuro.models.fusion import DiagGaussian, MixturePosterior


@dataclass
class Posterior:
    """The posterior over the whole latent (``.mean``/``.variance`` (N, D_total)) and its parts.

    ``fused``: q(z_shared | present modalities) (mixture moments for MoE/MoPoE); ``unimodal``: each
    expert's q(z_shared | x_m); ``private`` (factorised models only): q(z_private_m | x_m) where
    x_m is present, the N(0, I) prior elsewhere. z = (shared, private of each modality in order).
    """

    fused: DiagGaussian | MixturePosterior
    unimodal: dict[str, DiagGaussian]
    present: dict[str, torch.Tensor]
    private: dict[str, DiagGaussian] = field(default_factory=dict)

    def _joined(self, shared: torch.Tensor, private: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([shared, *private], -1) if private else shared

    @property
    def mean(self) -> torch.Tensor:
        return self._joined(self.fused.mean, [q.mean for q in self.private.values()])

    @property
    def variance(self) -> torch.Tensor:
        return self._joined(self.fused.variance, [q.variance for q in self.private.values()])

    def sample(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """K samples (K, N, D_total) from the posterior (no gradient)."""
        with torch.no_grad():
            if isinstance(self.fused, MixturePosterior):
                shared = self.fused.sample(k, generator)
            else:
                shared = self.fused.rsample(k, generator)
            return self._joined(shared, [q.rsample(k, generator) for q in self.private.values()])

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z) for z (..., N, D_total): the fused shared density times the private densities."""
        d = self.fused.mean.shape[-1]
        out = self.fused.log_prob(z[..., :d])
        for q in self.private.values():
            width = q.mean.shape[-1]
            out = out + q.log_prob(z[..., d:d + width])
            d += width
        return out


def or_prior(q: DiagGaussian, use: torch.Tensor) -> DiagGaussian:
    """q (..., N, D) where ``use`` (..., N) is true, N(0, I) (mean 0, log-variance 0) elsewhere."""
    use = use.unsqueeze(-1)
    return DiagGaussian(torch.where(use, q.mean, 0.0), torch.where(use, q.logvar, 0.0))

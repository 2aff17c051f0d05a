"""MoPoE (Sutter et al. 2021): a mixture over every non-empty modality subset of that subset's
product of experts (with the N(0, I) expert if ``mopoe_prior_expert``), trained by the mixture ELBO."""

from __future__ import annotations

import torch

from mmneuro.models.fusion import DiagGaussian, MixturePosterior, mixture_of_products, nonempty_subsets
from mmneuro.models.mixture import MixtureModel
from mmneuro.models.objectives import LogLik, Terms, mixture_elbo


class MoPoEModel(MixtureModel):
    """Mixture-of-PoE fusion; the ELBO of the mixture posterior."""

    kind = "mopoe"

    @property
    def prior_expert(self) -> bool:
        return self.config.mopoe_prior_expert

    def _fuse(self, unimodal: DiagGaussian, present: torch.Tensor) -> MixturePosterior:
        return mixture_of_products(unimodal, present, self.prior_expert)

    def _components(self) -> list[tuple[int, ...]]:
        return nonempty_subsets(len(self.modalities))

    def _mixture_objective(self, mixture: MixturePosterior, log_lik: LogLik, beta: float,
                           generator: torch.Generator | None) -> tuple[torch.Tensor, Terms]:
        return mixture_elbo(mixture, log_lik, beta, generator)

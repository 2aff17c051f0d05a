"""The MMVAE (Shi et al. 2019): a mixture of the unimodal experts, trained by stratified IWAE
(``K`` samples per component, ``iwae_variant``) with DReG gradients (``dreg``)."""

from __future__ import annotations

import torch

from mmneuro.models.fusion import DiagGaussian, MixturePosterior, mixture_of_experts
from mmneuro.models.mixture import MixtureModel
from mmneuro.models.objectives import LogLik, Terms, mixture_iwae


class MMVAEModel(MixtureModel):
    """MoE fusion; stratified IWAE/DReG (no KL weight: ``beta`` does not apply)."""

    kind = "mmvae"
    prior_expert = False  # a unimodal component is the expert alone

    def _fuse(self, unimodal: DiagGaussian, present: torch.Tensor) -> MixturePosterior:
        return mixture_of_experts(unimodal, present)

    def _components(self) -> list[tuple[int, ...]]:
        return [(i,) for i in range(len(self.modalities))]

    def _mixture_objective(self, mixture: MixturePosterior, log_lik: LogLik, beta: float,
                           generator: torch.Generator | None) -> tuple[torch.Tensor, Terms]:
        cfg = self.config
        return mixture_iwae(mixture, log_lik, int(cfg.K), cfg.iwae_variant, cfg.dreg, generator)

"""What the mixture posteriors (MMVAE, MoPoE) share: a mixture over conditioning subsets, each
component completed with its modalities' private posteriors in factorised models."""

from __future__ import annotations

import torch

from mmneuro.models.base import MultimodalVAE
from mmneuro.models.fusion import DiagGaussian, MixturePosterior
from mmneuro.models.objectives import LogLik, Terms


class MixtureModel(MultimodalVAE):
    """A subclass gives the mixture's components (:meth:`_components`, in :meth:`_fuse`'s order) and
    its objective on the completed mixture (:meth:`_mixture_objective`)."""

    def _components(self) -> list[tuple[int, ...]]:
        """The conditioning subset of each mixture component (modality indices)."""
        raise NotImplementedError

    def _mixture_objective(self, mixture: MixturePosterior, log_lik: LogLik, beta: float,
                           generator: torch.Generator | None) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def _objective(self, unimodal: DiagGaussian, private: dict[str, DiagGaussian], present: torch.Tensor,
                   log_lik: LogLik, beta: float, generator: torch.Generator | None) -> tuple[torch.Tensor, Terms]:
        mixture = self._complete_mixture(self._fuse(unimodal, present), self._components(), present, private)
        return self._mixture_objective(mixture, log_lik, beta, generator)

    def _component_members(self, subsets: list[tuple[int, ...]], present: torch.Tensor) -> torch.Tensor:
        """(C, M, N) bool: modality m is in component c's conditioning set and present for sample n."""
        member = torch.zeros(len(subsets), len(self.modalities), 1, dtype=torch.bool, device=present.device)
        for c, subset in enumerate(subsets):
            member[c, list(subset)] = True
        return member & present.unsqueeze(0)

    def _complete_mixture(self, mixture: MixturePosterior, subsets: list[tuple[int, ...]], present: torch.Tensor,
                          private: dict[str, DiagGaussian]) -> MixturePosterior:
        """Each mixture component over the whole latent: its own modalities' private posteriors, the
        prior for the others (MMVAE+'s q(z|x_m) q(w_m|x_m) r(w_n), with r the N(0, I) prior)."""
        if not self.factorised:
            return mixture
        members = self._component_members(subsets, present)
        return MixturePosterior(self._with_private(mixture.components, members, private), mixture.weights)


"""Product-of-experts models: the MVAE (Wu & Goodman 2018) and its one-modality case, the VAE.

The MVAE fuses with a product of the unimodal experts and the N(0, I) expert
(``poe_prior_expert``) and trains ELBO(x_1, …, x_M) + Σ_m ELBO(x_m), plus ``mvae_random_subsets``
random subsets of middle size per step.
"""

from __future__ import annotations

import functools
import random

import torch

from mmneuro.models.base import MultimodalVAE
from mmneuro.models.fusion import DiagGaussian, nonempty_subsets, product_of_experts
from mmneuro.models.objectives import LogLik, Terms, subset_elbos


class MVAEModel(MultimodalVAE):
    """PoE fusion; the sum of the joint and the unimodal subset ELBOs."""

    kind = "mvae"

    @property
    def prior_expert(self) -> bool:
        return self.config.poe_prior_expert

    def _fuse(self, unimodal: DiagGaussian, present: torch.Tensor) -> DiagGaussian:
        return product_of_experts(unimodal, present, self.prior_expert)

    def _subsets(self, generator: torch.Generator | None) -> list[tuple[int, ...]]:
        """The modality subsets whose ELBOs this step trains: all modalities, each alone, and (in
        training) ``mvae_random_subsets`` of the middle sizes, drawn from ``generator``."""
        m = len(self.modalities)
        subsets = [tuple(range(m))]
        if m > 1:
            subsets += [(i,) for i in range(m)]
            middle = [s for s in nonempty_subsets(m) if 1 < len(s) < m]
            if self.training and self.config.mvae_random_subsets and middle:
                rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=generator,
                                                       device=None if generator is None else generator.device)))
                subsets += rng.sample(middle, min(self.config.mvae_random_subsets, len(middle)))
        return subsets

    def _objective(self, unimodal: DiagGaussian, private: dict[str, DiagGaussian], present: torch.Tensor,
                   log_lik: LogLik, beta: float, generator: torch.Generator | None) -> tuple[torch.Tensor, Terms]:
        complete = functools.partial(self._with_private, private=private) if self.factorised else None
        cross = self.config.mvae_cross_reconstruction
        if isinstance(cross, (list, tuple)):
            # in training these modalities are reconstructed from every subset; evaluation (the
            # validation loss that early stopping reads) scores Wu & Goodman's subset ELBOs alone: the
            # cross terms' held-out per-bin likelihood worsens while the predictions still improve
            # (docs/models.md, "The MVAE's audio -> neural falls with steps")
            cross = (torch.tensor([m in cross for m in self.modalities], device=present.device)
                     if self.training else False)
        per_sample, terms = subset_elbos(unimodal, present, log_lik, self._subsets(generator), beta,
                                         self.prior_expert, generator, complete, cross)
        return per_sample, {self._rename(k): v for k, v in terms.items()}

    def _rename(self, term: str) -> str:
        """'recon_0+1' → 'recon_audio+neural'."""
        kind, _, idx = term.partition("_")
        return f"{kind}_" + "+".join(self.modalities[int(i)] for i in idx.split("+"))


class VAEModel(MVAEModel):
    """One modality (ModelConfig checks it): the MVAE's objective is then the plain ELBO."""

    kind = "vae"

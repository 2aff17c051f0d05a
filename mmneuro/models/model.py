"""Compatibility shim: the names ``mmneuro.models.model`` held before the models were split by
kind (configs in config.py, the base class in base.py, one module per kind, persistence.py).
Import from ``mmneuro.models`` instead; remove this module once no caller uses it."""

from mmneuro.models.base import MultimodalVAE
from mmneuro.models.config import KINDS, NEURAL_INPUT_DROPOUT, ExpertConfig, ModelConfig, default_expert
from mmneuro.models.objectives import mixture_elbo, mixture_iwae, shared_disagreement, subset_elbos
from mmneuro.models.persistence import CONFIG_FILE, WEIGHTS_FILE, load_model
from mmneuro.models.posterior import Posterior

__all__ = ["CONFIG_FILE", "KINDS", "NEURAL_INPUT_DROPOUT", "WEIGHTS_FILE", "ExpertConfig", "ModelConfig",
           "MultimodalVAE", "Posterior", "default_expert", "load_model", "mixture_elbo", "mixture_iwae",
           "shared_disagreement", "subset_elbos"]

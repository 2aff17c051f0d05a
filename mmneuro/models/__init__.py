"""Multimodal VAEs (MVAE, MMVAE, MoPoE, VAE) built from experts, fusion and objectives.

Three lines from a notebook::

    from mmneuro.models import load_model
    model = load_model("results/models/mvae")
    z = model.encode({"audio": audio, "neural": counts}).mean
"""

from mmneuro.models.fusion import (
    DiagGaussian,
    MixturePosterior,
    mixture_of_experts,
    mixture_of_products,
    product_of_experts,
)
from mmneuro.models.model import (
    KINDS,
    ExpertConfig,
    ModelConfig,
    MultimodalVAE,
    Posterior,
    default_expert,
    load_model,
)

__all__ = [
    "KINDS",
    "DiagGaussian",
    "ExpertConfig",
    "MixturePosterior",
    "ModelConfig",
    "MultimodalVAE",
    "Posterior",
    "default_expert",
    "load_model",
    "mixture_of_experts",
    "mixture_of_products",
    "product_of_experts",
]

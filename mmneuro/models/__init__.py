"""Multimodal VAEs (MVAE, MMVAE, MoPoE, VAE) built from experts, fusion and objectives.

One class per kind (``MVAEModel``, ``MMVAEModel``, ``MoPoEModel``, ``VAEModel``) on the shared base
``MultimodalVAE``; ``build_model(config)`` picks the class from ``config.kind``. Three lines from a
notebook::

    from mmneuro.models import load_model
    model = load_model("results/models/mvae")
    z = model.encode({"audio": audio, "neural": counts}).mean
"""

from mmneuro.models.base import MultimodalVAE
from mmneuro.models.config import KINDS, ExpertConfig, ModelConfig, default_expert
from mmneuro.models.fusion import (
    DiagGaussian,
    MixturePosterior,
    mixture_of_experts,
    mixture_of_products,
    product_of_experts,
)
from mmneuro.models.mmvae import MMVAEModel
from mmneuro.models.mopoe import MoPoEModel
from mmneuro.models.mvae import MVAEModel, VAEModel
from mmneuro.models.persistence import load_model, save_model
from mmneuro.models.posterior import Posterior
from mmneuro.models.registry import MODEL_CLASSES, build_model, model_class

__all__ = [
    "KINDS",
    "MODEL_CLASSES",
    "DiagGaussian",
    "ExpertConfig",
    "MMVAEModel",
    "MixturePosterior",
    "ModelConfig",
    "MoPoEModel",
    "MultimodalVAE",
    "MVAEModel",
    "Posterior",
    "VAEModel",
    "build_model",
    "default_expert",
    "load_model",
    "mixture_of_experts",
    "mixture_of_products",
    "model_class",
    "product_of_experts",
    "save_model",
]

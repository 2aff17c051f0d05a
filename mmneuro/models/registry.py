"""ModelConfig.kind -> the model class that implements it."""

from __future__ import annotations

from mmneuro.errors import InputError
from mmneuro.models.base import MultimodalVAE
from mmneuro.models.config import KINDS, ModelConfig
from mmneuro.models.mmvae import MMVAEModel
from mmneuro.models.mopoe import MoPoEModel
from mmneuro.models.mvae import MVAEModel, VAEModel

MODEL_CLASSES: dict[str, type[MultimodalVAE]] = {cls.kind: cls for cls in (MVAEModel, MMVAEModel, MoPoEModel, VAEModel)}
assert set(MODEL_CLASSES) == set(KINDS), "every kind ModelConfig accepts needs a model class"


def model_class(kind: str) -> type[MultimodalVAE]:
    """The class of ``kind`` (one of KINDS)."""
    if kind not in MODEL_CLASSES:
        raise InputError("kind", f"unknown model kind {kind!r}; expected one of {tuple(MODEL_CLASSES)}")
    return MODEL_CLASSES[kind]


def build_model(config: ModelConfig) -> MultimodalVAE:
    """A freshly initialised model of ``config.kind`` (seed torch's global RNG first for repeatable weights)."""
    return model_class(config.kind)(config)

"""A model on disk: ``config.json`` (``{"model": ModelConfig}``, plus the training config when
mmneuro.train wrote it) and ``weights.pt`` (the state dict)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mmneuro.errors import InputError
from mmneuro.io import atomic_path
from mmneuro.models.base import MultimodalVAE
from mmneuro.models.config import ModelConfig
from mmneuro.models.registry import build_model

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"


def save_model(model: MultimodalVAE, out_dir: str | Path, config: dict | None = None) -> Path:
    """Write ``config.json`` and ``weights.pt`` (state dict) into out_dir, each atomically.
    ``config``: the whole ``config.json`` content (``{"model": …, "train": …}`` from training);
    default ``{"model": model.config}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config or {"model": model.config.to_dict()}, indent=2, default=list))
    with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
        torch.save(model.state_dict(), tmp)
    return out_dir


def load_model(out_dir: str | Path, map_location: str = "cpu") -> MultimodalVAE:
    """Rebuild a model from ``out_dir/config.json`` and load ``out_dir/weights.pt``."""
    out_dir = Path(out_dir)
    config_path, weights_path = out_dir / CONFIG_FILE, out_dir / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InputError(path, "file not found (not a trained model directory?)")
    try:
        config = ModelConfig.from_dict(json.loads(config_path.read_text())["model"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(config_path, f"not a model config ({err})") from err
    model = build_model(config)
    model.load_state_dict(torch.load(weights_path, map_location=map_location, weights_only=True))
    model.eval()
    return model

"""Train a multimodal VAE on ``dataset.nc``: ``fit(dataset, config, out_dir) -> model``.

Without an out_dir nothing is written (``fit_model`` also returns the config and per-epoch metrics).
With one, it writes (each file atomically): ``config.json`` (model + training config),
``weights.pt`` (best-validation weights), ``metrics.csv`` (one row per epoch), ``checkpoint.pt``
(everything needed to resume). Rerunning ``fit`` on the same out_dir with the same config and the
same training data resumes from the last checkpoint and ends exactly where an uninterrupted run
would have (every epoch's randomness is seeded from (seed, epoch), so nothing depends on how many
epochs ran in this process). A checkpoint of another config or other data is never resumed: it is
an InputError, or with ``on_mismatch="restart"`` (the workflow's choice) the folder is cleared and
training starts from scratch.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import xarray as xr

from mmneuro.adam import FusedAdam
from mmneuro.allocator import reuse_freed_memory
from mmneuro.collapse import COLLAPSE_NATS, posterior_kl, warn_collapse  # noqa: F401 (API)
from mmneuro.errors import InputError
from mmneuro.inputs import present_rows, training_arrays
from mmneuro.io import atomic_path, read_netcdf
from mmneuro.models import ExpertConfig, ModelConfig, MultimodalVAE, build_model, default_expert
from mmneuro.models.experts import mixed_precision
from mmneuro.models.persistence import WEIGHTS_FILE, save_model

CHECKPOINT_FILE, METRICS_FILE = "checkpoint.pt", "metrics.csv"
MODALITIES = ("audio", "neural")


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN/inf; the message names the epoch, batch and term."""


@dataclass
class TrainConfig:
    # measured on planted data (docs/models.md "Training defaults"): at batch 64 and lr 1e-3 every
    # model was still improving after 30 epochs; batch 32 doubles the steps for +1-3 % CPU time per
    # epoch on one thread (on two threads the demo's trainings took up to 59 % longer in wall time).
    # lr 2e-3 trained MVAE faster but left MoPoE's / MMVAE's audio decoder flat on two families
    epochs: int = 30
    # a floor on optimiser steps: epochs rise to ceil(min_steps / batches per epoch) on small datasets
    # (docs/models.md "Training defaults": the MVAE on 290 training syllables was still improving at
    # epoch 30 = 300 steps; the demo's 677 take 660 steps in 30 epochs, unchanged); 0: exactly `epochs`
    min_steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # the conv experts' networks in training (mmneuro.models.experts.mixed_precision): auto = bfloat16 on
    # a CPU with native bf16 kernels (AVX512-BF16/AMX: trainings 1.04-1.11x faster at 64x64 images,
    # 1.22x at 128x128, scores within seed noise; docs/models.md "Mixed precision"), float32 elsewhere
    # (GPUs included: not measured there)
    precision: str = "auto"  # auto | float32 | bfloat16
    patience: int = 8  # early stopping: epochs without a validation improvement (best weights kept)
    grad_clip: float = 10.0  # max global gradient norm; 0 disables
    neural_input: str = "counts"  # counts (unit × bin) | total_counts (unit)
    modalities: tuple[str, ...] | None = None  # default: both (vae: audio)
    val_fraction: float = 0.2  # only used when the dataset has no `split` coordinate


def split_config(config: dict | ModelConfig | None) -> tuple[dict, TrainConfig]:
    """Separate a flat config dict into model keys (incl. per-modality expert overrides under
    ``audio``/``neural``) and a :class:`TrainConfig`. Unknown keys are an InputError."""
    if isinstance(config, ModelConfig):
        model = config.to_dict()
        return model, TrainConfig(modalities=tuple(model["modalities"]))
    config = dict(config or {})
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)} | set(MODALITIES)
    unknown = set(config) - train_keys - model_keys
    if unknown:
        raise InputError("config", f"unknown keys {sorted(unknown)}; known: {sorted(train_keys | model_keys)}")
    from mmneuro.config import check_train_settings

    check_train_settings(config, "config")  # types and ranges, before any data is read
    train = TrainConfig(**{k: v for k, v in config.items() if k in train_keys})
    if train.device not in ("auto", "cpu", "cuda"):
        raise InputError("device", f"expected auto, cpu or cuda, got {train.device!r}")
    if train.neural_input not in ("counts", "total_counts"):
        raise InputError("neural_input", f"expected counts or total_counts, got {train.neural_input!r}")
    if train.epochs < 1 or train.batch_size < 1 or not train.lr > 0:
        raise InputError("config", "epochs, batch_size and lr must be positive")
    return {k: v for k, v in config.items() if k in model_keys}, train


# ---- data ---------------------------------------------------------------------------------
def _json_attr_or_none(ds: xr.Dataset, stage: str):
    """A stage's parameter record from dataset.nc attrs (``params`` for the dataset itself,
    ``<stage>_params`` otherwise), decoded from JSON; None when absent or empty."""
    value = ds.attrs.get("params" if stage == "dataset" else f"{stage}_params")
    if isinstance(value, str):
        return json.loads(value) if value else None
    return value


def get_split(ds: xr.Dataset, val_fraction: float, seed: int) -> np.ndarray:
    """The dataset's `split` coordinate, or a seeded train/val split by syllable when it has none."""
    if "split" in ds.coords:
        return ds["split"].values.astype(str)
    n = ds.sizes.get("syllable", 0)
    order = np.random.default_rng(seed).permutation(n)
    split = np.full(n, "train", dtype=object)
    split[order[: int(round(val_fraction * n))]] = "val"
    return split.astype(str)


def max_epochs(train: TrainConfig, n_train: int) -> int:
    """``train.epochs``, raised so that ``n_train`` syllables in batches of ``train.batch_size`` get
    at least ``train.min_steps`` optimiser steps (early stopping may still end the run sooner)."""
    return max(train.epochs, math.ceil(train.min_steps / max(1, math.ceil(n_train / train.batch_size))))


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


# ---- training -----------------------------------------------------------------------------
def build_model_config(model_dict: dict, train: TrainConfig, arrays: dict[str, np.ndarray],
                       preprocessing: dict) -> ModelConfig:
    """Fill expert shapes from the data; per-modality dicts override the default experts."""
    fields = {k: v for k, v in model_dict.items() if k not in MODALITIES}
    # a ModelConfig passed whole carries its experts under `modalities`; a flat dict under the names
    given = model_dict.get("modalities") if isinstance(model_dict.get("modalities"), dict) else {}
    experts = {}
    for name, values in arrays.items():
        base = dataclasses.asdict(default_expert(name, list(values.shape[1:]), fields.get("kind", "mvae")))
        override = dict(model_dict.get(name) or given.get(name) or {})
        if isinstance(override, ExpertConfig):
            override = dataclasses.asdict(override)
        if "shape" in override and list(override["shape"]) != base["shape"]:
            raise InputError(f"{name}.shape", f"data has shape {base['shape']}, config says {override['shape']}")
        base.update(override)
        experts[name] = ExpertConfig(**base)
    fields["modalities"] = experts
    # user-given preprocessing records are kept; neural_input always says what the model was fed
    fields["preprocessing"] = {**preprocessing, **(fields.get("preprocessing") or {}),
                               "neural_input": train.neural_input}
    return ModelConfig(**fields)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device", "cuda requested but no CUDA device is available")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``precision`` with ``auto`` made concrete: ``bfloat16`` on a CPU whose oneDNN has native bf16
    kernels, else ``float32``."""
    if precision != "auto":
        return precision
    try:  # oneDNN's own check of the CPU (AVX512-BF16 or AMX); a private op, hence the guard
        native = device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bfloat16" if native else "float32"


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent seeds per (seed, epoch, stream): resume needs no RNG state."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _epoch_generator(seed: int, epoch: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on :func:`_epoch_seed`'s stream. ``device``: where the numbers are drawn (a CUDA
    model's sampling needs a CUDA generator)."""
    return torch.Generator(device=device).manual_seed(_epoch_seed(seed, epoch, stream))


def _check_finite(loss: torch.Tensor, terms: dict[str, float], epoch: int, batch: int) -> None:
    bad = [k for k, v in terms.items() if not math.isfinite(v)]
    if not torch.isfinite(loss).all() or bad:
        term = bad[0] if bad else "loss"
        value = terms.get(term, float(loss.detach()))
        raise NonFiniteLossError(f"epoch {epoch}, batch {batch}: loss term {term!r} is {value} "
                                 "(try a lower lr, a smaller beta, or check the data)")


def _run_epoch(model, tensors, idx_batches, optimizer, beta_fn, epoch, train, generator, progress):
    """One pass; returns the sample-weighted mean loss and terms. ``optimizer`` None = evaluation."""
    from tqdm.auto import tqdm

    totals: dict[str, float] = {}
    counts: dict[str, int] = {}  # per term: a batch without a modality has no kl_unimodal_<m>
    count = 0
    bar = tqdm(idx_batches, desc=f"epoch {epoch} {'train' if optimizer else 'val'}", file=sys.stderr,
               disable=not progress, leave=False)
    for b, idx in enumerate(bar):
        x = {m: t[idx] for m, t in tensors.items()}
        beta = beta_fn(epoch - 1 + b / max(1, len(idx_batches)))
        with torch.set_grad_enabled(optimizer is not None):
            loss, terms = model.loss(x, beta=beta, generator=generator)
        _check_finite(loss, terms, epoch, b)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train.grad_clip:
                # clip after backward (the gradients exist only now), before the step
                torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
        n = len(idx)
        count += n
        for k, v in {"loss": float(loss.detach()), **terms}.items():
            totals[k] = totals.get(k, 0.0) + n * v
            counts[k] = counts.get(k, 0) + n
        bar.set_postfix({k: f"{v / counts[k]:.4g}" for k, v in list(totals.items())[:4]})
    return {k: v / counts[k] for k, v in totals.items()}


def fit_epoch(model, train_t: dict, val_t: dict, optimizer, beta_at, final_beta: float, epoch: int,
              train: TrainConfig, progress: bool = False) -> tuple[dict, float]:
    """One epoch of :func:`fit_model`: optimiser steps on ``train_t`` ({modality: tensor}) in the
    epoch's seeded batch order, then the loss terms on ``val_t`` at ``final_beta`` (none if it is
    empty). Returns the train_* (and val_*) terms and the early-stopping score (val loss, else train)."""
    device = next(iter(train_t.values())).device
    n_train, n_val = (len(next(iter(t.values()))) for t in (train_t, val_t))
    model.train()
    # the global RNG feeds dropout layers (the mixtures' neural input_dropout): seeded per epoch as well,
    # so a resumed run draws the same masks
    torch.manual_seed(_epoch_seed(train.seed, epoch, 2))
    gen = _epoch_generator(train.seed, epoch, 0)  # batch order: drawn on the CPU on every device
    # on the CPU the model samples from the same stream (results as before); elsewhere from its own
    sampler = gen if device.type == "cpu" else _epoch_generator(train.seed, epoch, 0, device)
    terms = {f"train_{k}": v for k, v in _run_epoch(model, train_t, _batches(n_train, train.batch_size, gen),
                                                     optimizer, beta_at, epoch, train, sampler, progress).items()}
    model.eval()
    if not n_val:
        return terms, terms["train_loss"]
    terms |= {f"val_{k}": v for k, v in _run_epoch(model, val_t, _batches(n_val, train.batch_size, None), None,
                                                   lambda _: final_beta, epoch, train,
                                                   _epoch_generator(train.seed, 0, 1, device), progress).items()}
    return terms, terms["val_loss"]


def make_optimizer(model: torch.nn.Module, lr: float) -> FusedAdam:
    """The training's optimiser: Adam, fused (one kernel for all parameters instead of ~10 tensor ops
    each: 8 of 180 ms per demo step on one CPU thread; the same updates to float rounding, 6e-8 after
    200 steps), outside torch.optim so that training does not import torch._dynamo (mmneuro.adam)."""
    return FusedAdam(model.parameters(), lr=lr)


@dataclass
class FitResult:
    """A finished training: the best model, its ``config.json`` content ({"model": …, "train": …})
    and one metrics row per epoch (the rows of ``metrics.csv``)."""

    model: MultimodalVAE
    config: dict
    metrics: list[dict] = field(default_factory=list)


def fit(dataset: xr.Dataset | str | Path, config: dict | ModelConfig | None, out_dir: str | Path | None = None,
        progress: bool = True, on_epoch_end: Callable[[int], None] | None = None,
        on_mismatch: str = "error") -> MultimodalVAE:
    """Train on the dataset's ``train`` syllables, early-stop on ``val``; return the best model.

    dataset: an xr.Dataset in the dataset.nc layout or its path. config: flat dict of ModelConfig
    keys (kind, latent_dim, K, beta, …), per-modality expert overrides (``audio: {...}``) and
    TrainConfig keys (epochs, min_steps, batch_size, lr, seed, device, patience, grad_clip,
    neural_input, modalities). out_dir None: nothing is written. Otherwise resumes from
    ``out_dir/checkpoint.pt`` if it was written with the same config and data; else ``on_mismatch``:
    "error" (InputError) or "restart" (clear the folder, train anew). ``on_epoch_end(epoch)`` is
    called after each epoch (and its checkpoint); tests use it to simulate a kill.
    """
    return fit_model(dataset, config, out_dir, progress, on_epoch_end, on_mismatch).model


def fit_model(dataset: xr.Dataset | str | Path, config: dict | ModelConfig | None, out_dir: str | Path | None = None,
              progress: bool = True, on_epoch_end: Callable[[int], None] | None = None,
              on_mismatch: str = "error") -> FitResult:
    """:func:`fit`, returning the model with its config and per-epoch metrics."""
    where = str(dataset) if isinstance(dataset, (str, Path)) else "dataset"
    ds = read_netcdf(dataset) if isinstance(dataset, (str, Path)) else dataset
    model_dict, train = split_config(config)
    kind = model_dict.get("kind", "mvae")
    modalities = tuple(train.modalities or (("audio",) if kind == "vae" else MODALITIES))
    unknown = set(modalities) - set(MODALITIES)
    if unknown:
        raise InputError("modalities", f"unknown {sorted(unknown)}; expected a subset of {MODALITIES}")
    arrays = training_arrays(ds, train.neural_input, modalities, where)
    split = get_split(ds, train.val_fraction, train.seed)
    present_any = np.stack([present_rows(m, np.isfinite(a.reshape(len(a), -1))) for m, a in arrays.items()]).any(0)
    train_idx = np.flatnonzero((split == "train") & present_any)
    val_idx = np.flatnonzero((split == "val") & present_any)
    if len(train_idx) == 0:
        raise InputError(where, "no training syllables (split == 'train' with at least one modality)")
    if len(val_idx) == 0:
        warnings.warn(f"{where}: no validation syllables ({len(train_idx)} for training); the best epoch and "
                      "early stopping are judged on the training loss", stacklevel=2)
    # the stage parameters the data were made with travel with the model (mmneuro.apply reuses them)
    preprocessing = {"dataset_params": _json_attr_or_none(ds, "dataset") or {},
                     "audio_params": _json_attr_or_none(ds, "audio"),
                     "neural_params": _json_attr_or_none(ds, "neural"),
                     "neural_input": train.neural_input}
    model_config = build_model_config(model_dict, train, arrays, preprocessing)
    epochs = max_epochs(train, len(train_idx))
    device = _device(train.device)
    precision = resolve_precision(train.precision, device)
    train_dict = dataclasses.asdict(train) | {"modalities": list(modalities), "max_epochs": epochs,
                                              "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
                                              "precision": precision}
    full_config = {"model": model_config.to_dict(), "train": train_dict}

    torch.manual_seed(train.seed)
    model = build_model(model_config).to(device)
    optimizer = make_optimizer(model, train.lr)
    tensors = {m: torch.from_numpy(a).to(device) for m, a in arrays.items()}
    train_t = {m: t[torch.from_numpy(train_idx).to(device)] for m, t in tensors.items()}
    val_t = {m: t[torch.from_numpy(val_idx).to(device)] for m, t in tensors.items()}
    model.init_output_bias(train_t)  # data-dependent init (docs/models.md); a resumed checkpoint overwrites it

    if out_dir is None:
        identity, state = None, _fresh_state(model)
    else:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        identity = {"config": full_config, "data_sha256": data_digest(arrays, train_idx, val_idx)}
        state = _load_checkpoint(out_dir, identity, model, optimizer, device, on_mismatch)

    if epochs > train.epochs and progress:
        print(f"{len(train_idx)} training syllables: up to {epochs} epochs for min_steps={train.min_steps}",
              file=sys.stderr)
    # reuse_freed_memory: the same values; no page faults for every step's tensors (mmneuro.allocator)
    with reuse_freed_memory(), mixed_precision(model, getattr(torch, precision)):
        for epoch in range(state["epoch"] + 1, epochs + 1):
            if state["bad_epochs"] >= train.patience:
                break
            terms, score = fit_epoch(model, train_t, val_t, optimizer, model_config.beta_at, model_config.beta,
                                     epoch, train, progress)
            row = {"epoch": epoch, "beta": model_config.beta_at(epoch - 1), **terms}
            if score < state["best"]:
                state["best"], state["bad_epochs"] = score, 0
                state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch
            state["metrics"].append(row)
            if out_dir is not None:
                _save_checkpoint(out_dir, identity, model, optimizer, state)
            if progress:
                print(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
                      file=sys.stderr)
            if on_epoch_end is not None:
                on_epoch_end(epoch)

    warn_collapse(state["metrics"], where if out_dir is None else out_dir)
    model.load_state_dict(state["best_state"])
    model.eval()
    result = FitResult(model, full_config, state["metrics"])
    if out_dir is not None:
        # also when a finished checkpoint was resumed: a workflow rerun deletes metrics.csv first
        save_result(result, out_dir)
    return result


# ---- persistence --------------------------------------------------------------------------
def save_result(result: FitResult, out_dir: str | Path) -> Path:
    """Write a training's ``weights.pt`` (best weights), ``config.json`` and ``metrics.csv`` into out_dir:
    what :func:`fit` leaves there besides the checkpoint, and what mmneuro.models.load_model reads."""
    out_dir = Path(out_dir)
    save_model(result.model, out_dir, config=result.config)
    _write_text(out_dir / METRICS_FILE, _metrics_csv(result.metrics))
    return out_dir


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _metrics_csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def data_digest(arrays: dict[str, np.ndarray], train_idx: np.ndarray, val_idx: np.ndarray) -> str:
    """SHA-256 of the training arrays (names, shapes, values) and the split: a checkpoint's data identity."""
    digest = hashlib.sha256()
    for name, values in arrays.items():
        digest.update(f"{name}{values.shape}{values.dtype}".encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    for idx in (train_idx, val_idx):
        digest.update(np.asarray(idx, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()


def _save_checkpoint(out_dir: Path, identity: dict, model, optimizer, state: dict) -> None:
    checkpoint = {**identity, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  **{k: state[k] for k in ("epoch", "best", "bad_epochs", "best_state", "metrics")}}
    with atomic_path(out_dir / CHECKPOINT_FILE) as tmp:
        torch.save(checkpoint, tmp)
    _write_text(out_dir / METRICS_FILE, _metrics_csv(state["metrics"]))


def _as_json(value):
    return json.loads(json.dumps(value, default=list))


def _fresh_state(model) -> dict:
    """Training progress before the first epoch (the initial weights count as the best so far)."""
    return {"epoch": 0, "best": math.inf, "bad_epochs": 0, "metrics": [],
            "best_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def _load_checkpoint(out_dir: Path, identity: dict, model, optimizer, device, on_mismatch: str) -> dict:
    """Restore model/optimizer/progress from checkpoint.pt when it has this run's config and data
    digest; a mismatch is an InputError or (``on_mismatch="restart"``) clears the folder's outputs."""
    if on_mismatch not in ("error", "restart"):
        raise ValueError(f"on_mismatch must be 'error' or 'restart', got {on_mismatch!r}")
    fresh = _fresh_state(model)
    path = out_dir / CHECKPOINT_FILE
    if not path.is_file():
        return fresh
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=False)
        saved = {"config": _as_json(checkpoint["config"]), "data_sha256": checkpoint.get("data_sha256")}
    except Exception as err:  # a checkpoint from another version, or a damaged file
        saved = {"unreadable": f"{type(err).__name__}: {err}"}
    if saved == _as_json(identity):
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        return {k: checkpoint[k] for k in fresh}
    if on_mismatch == "error":
        what = (f"is unreadable ({saved['unreadable']})" if "unreadable" in saved else
                "was written with a different config" if saved["config"] != _as_json(identity["config"])
                else "was written for different training data")
        raise InputError(path, f"checkpoint {what}; its weights would not belong to this run. Use a new "
                               "--out directory, delete the folder, or pass --restart to retrain from scratch")
    print(f"{path}: stale checkpoint (other config or data); training from scratch", file=sys.stderr)
    for name in (CHECKPOINT_FILE, METRICS_FILE, WEIGHTS_FILE):
        (out_dir / name).unlink(missing_ok=True)
    return fresh

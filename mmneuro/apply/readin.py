"""A new session's own units: a read-in and a read-out fitted to the frozen model (LFADS / NDT style).

A session sorted on its own (sessions table ``units: own``) has units the model never saw: other
ids and another count. Everything the sessions share stays as trained: the audio expert, the
latent space, the neural expert's hidden layers. Only the parameters whose shape depends on the
unit count are new (mmneuro.analysis.multisession.unit_parameters): the neural encoder's
first-layer weight (the new units' read-in columns), the decoder's last layer (their read-out
rows) and any per-unit likelihood parameter. They are fitted with the model's own loss on the
session's ``train`` syllables, early-stopped on its ``val`` syllables; ``test`` syllables are
left for the scores. Deterministic for a seed (batch order and sampling drawn per epoch from it).

Start: read-in and read-out weights 0 (the new units are first unobserved to the encoder and
decoded at a constant rate), the read-out bias at each unit's mean count (the rate a
Poisson/negative-binomial decoder gives where the rest of its output is 0), as
``output_bias_init`` does for a training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from mmneuro.errors import InputError


@dataclass
class ReadinFit:
    """The model with the session's read-in and read-out, the keys of the fitted parameters, the
    split of the session's syllables (train / val / test) and one metrics row per epoch."""

    model: object
    fitted: list[str]
    split: np.ndarray
    metrics: list[dict] = field(default_factory=list)

    @property
    def best_epoch(self) -> int:
        key = "val_loss" if any("val_loss" in r for r in self.metrics) else "train_loss"
        return int(min(self.metrics, key=lambda r: r[key])["epoch"]) if self.metrics else 0


def readin_split(ds: xr.Dataset, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """The session's ``split`` coordinate where it has one (a dataset.nc view), else a seeded
    train / val / test split of its syllables, drawn as mmneuro.dataset draws a session's."""
    from mmneuro.dataset import _split_labels

    if "split" in ds.coords:
        return ds["split"].values.astype(str)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20]))
    return _split_labels(ds.sizes["syllable"], val_fraction, test_fraction, rng).astype(str)


def fit_readin(model, ds: xr.Dataset, *, neural_input: str, epochs: int = 200, patience: int = 10,
               lr: float = 1e-2, batch_size: int = 32, val_fraction: float = 0.15, test_fraction: float = 0.15,
               seed: int = 0, where: str | None = None) -> ReadinFit:
    """Fit a read-in and read-out for the units of ``ds`` (one session with audio and neural data,
    counts (syllable, unit[, bin]) of its own units) to the frozen ``model``.

    epochs: at most; patience: epochs without a validation improvement before stopping (the best
    epoch's parameters are kept); lr: Adam's step size (only linear maps of frozen features are
    fitted, so a larger step than a training's works). Returns a :class:`ReadinFit`; every
    parameter outside ``fitted`` is bitwise the model's.
    """
    import torch

    from mmneuro.analysis.multisession import unit_parameters, with_unit_count
    from mmneuro.inputs import model_inputs
    from mmneuro.train import TrainConfig, _batches, _epoch_generator, _epoch_seed, _run_epoch

    where = where or str(ds.attrs.get("session", "session"))
    if "neural" not in model.modalities or "audio" not in model.modalities:
        raise InputError(where, "a session with its own units needs a model with audio and neural experts")
    for name in ("audio", "neural"):
        if not (f"has_{name}" in ds.coords and ds[f"has_{name}"].values.all()):
            raise InputError(where, f"a session with its own units needs {name} data for every syllable: its "
                                    "read-in and read-out are fitted against the latent its audio gives")
    split = readin_split(ds, val_fraction, test_fraction, seed)
    train_idx, val_idx = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if len(train_idx) < 2:
        raise InputError(where, f"{len(train_idx)} training syllables: too few to fit its units' read-in and read-out")
    n_units = ds.sizes["unit"]
    new = with_unit_count(model, n_units)
    fitted = unit_parameters(new)
    state = model.state_dict()
    init = new.state_dict()
    for key in fitted:  # weights 0; per-unit likelihood parameters keep their constructor's value
        state[key] = torch.zeros_like(init[key]) if key.startswith(("experts.neural.encoder",
                                                                     "experts.neural.decoder")) else init[key]
    new.load_state_dict(state)
    for key, p in new.named_parameters():
        p.requires_grad_(key in fitted)
    x = model_inputs(ds, new, where, neural_input=neural_input)
    tensors = {m: torch.from_numpy(a) for m, a in x.items()}
    train_t = {m: t[torch.from_numpy(train_idx)] for m, t in tensors.items()}
    val_t = {m: t[torch.from_numpy(val_idx)] for m, t in tensors.items()}
    new.experts["neural"].init_output_bias(train_t["neural"])
    params = [p for p in new.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    train = TrainConfig(batch_size=batch_size, seed=seed)
    beta = float(model.config.beta)  # the warm-up is over: the trained model's final KL weight
    best, best_state, bad, metrics = math.inf, None, 0, []
    for epoch in range(1, epochs + 1):
        new.train()
        torch.manual_seed(_epoch_seed(seed, epoch, 2))  # dropout masks (see mmneuro.train)
        gen = _epoch_generator(seed, epoch, 0)
        row = {"epoch": epoch}
        row |= {f"train_{k}": v for k, v in _run_epoch(new, train_t, _batches(len(train_idx), batch_size, gen),
                                                        optimizer, lambda _: beta, epoch, train, gen, False).items()}
        new.eval()
        score = row["train_loss"]
        if len(val_idx):
            row |= {f"val_{k}": v for k, v in _run_epoch(new, val_t, _batches(len(val_idx), batch_size, None), None,
                                                          lambda _: beta, epoch, train, _epoch_generator(seed, 0, 1),
                                                          False).items()}
            score = row["val_loss"]
        metrics.append(row)
        if score < best:
            best, bad = score, 0
            best_state = {k: v.detach().clone() for k, v in new.state_dict().items() if k in fitted}
        else:
            bad += 1
            if bad >= patience:
                break
    new.load_state_dict({**new.state_dict(), **best_state})
    for p in new.parameters():
        p.requires_grad_(True)
    return ReadinFit(new.eval(), fitted, split, metrics)


def match_to_training(model, fitted, dataset: xr.Dataset, ds: xr.Dataset, batch_size: int = 256):
    """The units of ``ds`` (a session, its read-in/read-out fitted: the model ``fitted``) matched to
    each training sort's units of ``model``'s ``dataset`` (mmneuro.analysis.multisession.match_new_units):
    rates decoded from audio over every syllable with audio of both, the frozen model's rows for
    the training units, the fitted read-out for the session's. Returns the matching table."""
    from mmneuro.analysis.multisession import decoded_rates, match_new_units

    audio = xr.concat([_audio_of(dataset), _audio_of(ds)], "syllable")
    return match_new_units(decoded_rates(model, audio, batch_size=batch_size), dataset,
                           decoded_rates(fitted, audio, batch_size=batch_size), ds["unit"].values,
                           str(ds.attrs.get("session", "session")))


def _audio_of(ds: xr.Dataset) -> xr.Dataset:
    """The syllables of ``ds`` with audio, as inputs for rates decoded from audio alone."""
    keep = ds["has_audio"].values.astype(bool) if "has_audio" in ds.coords else np.ones(ds.sizes["syllable"], bool)
    spec = ds["spectrogram"].isel(syllable=keep).transpose("syllable", "freq", "time").values
    return xr.Dataset({"spectrogram": (("syllable", "freq", "time"), spec)},
                      coords={"has_audio": ("syllable", np.ones(len(spec), np.int8))})

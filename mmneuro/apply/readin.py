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
    from mmneuro.train import TrainConfig, fit_epoch

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
        terms, score = fit_epoch(new, train_t, val_t, optimizer, lambda _: beta, beta, epoch, train)
        metrics.append({"epoch": epoch, **terms})
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


def match_to_training(model, fitted, dataset: xr.Dataset, ds: xr.Dataset, split: np.ndarray, neural_input: str,
                      batch_size: int = 256):
    """The units of the session ``ds`` (its read-in/read-out fitted: the model ``fitted``; ``split``
    its syllables' train / val / test) matched to each training sort's units of ``model``'s
    ``dataset`` by the analysis' rule (mmneuro.analysis.multisession.unit_matching): rates decoded
    from audio over every syllable with audio of both (the frozen model's rows for the training
    units, the fitted read-out for the session's), each unit's smoothed by a Poisson GLM of its own
    counts, mutual nearest neighbours, the rest by the Hungarian algorithm. Returns the pairs (a
    training unit, one of the session's) with the columns of unit_matching.csv."""
    from mmneuro.analysis.multisession import decoded_rates, rates_matching

    session = str(ds.attrs.get("session", "session"))
    label = f"{session} (applied)"  # its own sort, apart from a training session of the same name
    keep = [_with_audio(d) for d in (dataset, ds)]
    both = _on_one_unit_axis(dataset.isel(syllable=keep[0]), ds.isel(syllable=keep[1]), label,
                             split[keep[1]], neural_input)
    audio = xr.Dataset({"spectrogram": both["spectrogram"].variable}, coords={"has_audio": both["has_audio"].variable})
    rates = np.concatenate([decoded_rates(model, audio, batch_size=batch_size),
                            decoded_rates(fitted, audio, batch_size=batch_size)], axis=1)
    table = rates_matching(rates, both, neural_input)
    table = table[table["session_b"] == label].reset_index(drop=True)  # the session's sort comes last
    return table.assign(session_b=session)


def _with_audio(ds: xr.Dataset) -> np.ndarray:
    return ds["has_audio"].values.astype(bool) if "has_audio" in ds.coords else np.ones(ds.sizes["syllable"], bool)


def _on_one_unit_axis(dataset: xr.Dataset, ds: xr.Dataset, label: str, split: np.ndarray, neural_input: str) -> xr.Dataset:
    """The training ``dataset``'s syllables then the session's, on one unit axis (the training units,
    then the session's as the sort ``label``; NaN counts where a unit was not recorded), in the
    layout mmneuro.analysis.multisession reads: the neural input, the spectrograms, the syllable
    windows, split, session, unit_session and unit_id."""
    from mmneuro.dataset import SHARED_SORT
    from mmneuro.inputs import DIMS

    dims = DIMS[neural_input]
    a, b = (d[neural_input].transpose(*dims).values.astype(np.float32) for d in (dataset, ds))
    counts = np.full((len(a) + len(b), a.shape[1] + b.shape[1], *a.shape[2:]), np.nan, np.float32)
    counts[:len(a), :a.shape[1]] = a
    counts[len(a):, a.shape[1]:] = b
    if "has_neural" in dataset.coords:  # a training syllable without neural data records none of its units
        counts[:len(a)][~dataset["has_neural"].values.astype(bool)] = np.nan
    ids = dataset["unit_id"].values if "unit_id" in dataset.coords else dataset["unit"].values
    sorts = dataset["unit_session"].values if "unit_session" in dataset.coords else np.full(len(ids), SHARED_SORT)

    def per_syllable(name, new):
        return ("syllable", np.concatenate([dataset[name].values, new]))

    n = ds.sizes["syllable"]
    # a training syllable's "session" is its sort: the sessions sorted together are matched once, as "shared"
    own = set(sorts.tolist()) - {SHARED_SORT}
    sort_of = np.array([s if s in own else SHARED_SORT for s in dataset["session"].values.tolist()], object)
    recorded = dataset["has_neural"].values if "has_neural" in dataset.coords else np.ones(len(a), np.int8)
    coords = {"unit": np.arange(counts.shape[1]), "unit_id": ("unit", np.concatenate([ids, ds["unit"].values])),
              "unit_session": ("unit", np.concatenate([sorts.astype(object), np.full(b.shape[1], label, object)])),
              "session": ("syllable", np.concatenate([sort_of, np.full(n, label, object)])),
              "split": per_syllable("split", split), "onset_s": per_syllable("onset_s", ds["onset_s"].values),
              "offset_s": per_syllable("offset_s", ds["offset_s"].values),
              "has_neural": ("syllable", np.concatenate([recorded, np.ones(n, np.int8)]).astype(np.int8)),
              "has_audio": ("syllable", np.ones(len(counts), np.int8))}
    if "bin" in dims:
        coords |= {k: ("bin", dataset[k].values) for k in ("bin_start_s", "bin_end_s")}
    spectrogram = np.concatenate([d["spectrogram"].transpose("syllable", "freq", "time").values for d in (dataset, ds)])
    return xr.Dataset({neural_input: (dims, counts), "spectrogram": (("syllable", "freq", "time"), spectrogram)},
                      coords=coords, attrs={"neural_params": dataset.attrs.get("neural_params", "")})

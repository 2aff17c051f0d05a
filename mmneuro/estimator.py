"""sklearn-style estimators of the multimodal VAEs (CEBRA-like): ``mm.MoPoE(latent_dim=16).fit(ds)``.

``MVAE``, ``MMVAE`` and ``MoPoE`` take their hyper-parameters as keyword arguments: every field of
:class:`mmneuro.models.ModelConfig` (except ``kind``, ``modalities`` and ``preprocessing``, which the
class and the data set) and of :class:`mmneuro.train.TrainConfig`, with those dataclasses' defaults,
plus ``audio``/``neural``: overrides of that modality's expert (ExpertConfig fields, e.g.
``{"hidden": [64]}``). ``modalities`` (TrainConfig's) names the modalities to train on.

``fit(ds)`` trains on an in-memory dataset in the dataset.nc layout (mmneuro.train) and writes
nothing; ``save(folder)`` writes what ``mmneuro train`` writes (config.json, weights.pt,
metrics.csv), and ``load(folder)`` reads either.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.inputs import training_arrays
from mmneuro.models import ExpertConfig, ModelConfig, MultimodalVAE, default_expert, load_model
from mmneuro.models.persistence import CONFIG_FILE
from mmneuro.train import METRICS_FILE, MODALITIES, FitResult, TrainConfig, fit_model, save_result, split_config

# ModelConfig fields that are no hyper-parameters: the class sets kind, the data the experts' shapes
# (``modalities``) and the record of how the data were made (``preprocessing``)
_NOT_PARAMETERS = ("kind", "modalities", "preprocessing")
# the dataset variable and dims of each modality's decoded mean (neural: as the model's neural_input)
_OUTPUTS = {"audio": ("spectrogram", ("syllable", "freq", "time")),
            "counts": ("counts", ("syllable", "unit", "bin")),
            "total_counts": ("total_counts", ("syllable", "unit"))}


def _defaults() -> dict:
    """Every hyper-parameter -> its default, read from ModelConfig and TrainConfig."""
    params = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name not in _NOT_PARAMETERS}
    params |= {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return params | {m: None for m in MODALITIES}  # None: default_expert's settings


PARAMETERS = _defaults()


class NotFittedError(ValueError, AttributeError):
    """The estimator was asked for results before ``fit`` or ``load``."""


class _Estimator:
    """Shared by MVAE, MMVAE and MoPoE; a subclass sets ``kind`` (a ModelConfig kind)."""

    kind: ClassVar[str]

    def __init__(self, **params):
        self._set(PARAMETERS | params)

    # ---- hyper-parameters ---------------------------------------------------------------
    def _set(self, params: dict) -> None:
        unknown = set(params) - set(PARAMETERS)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown hyper-parameters {sorted(unknown)}; "
                            f"known: {', '.join(sorted(PARAMETERS))}")
        _check(self.kind, type(self).__name__, self._config(dict(self.get_params(), **params)))
        for name, value in params.items():
            setattr(self, name, value)

    def get_params(self, deep: bool = True) -> dict:
        """{hyper-parameter: value}, every one (sklearn's protocol; ``deep`` has no effect)."""
        return {name: getattr(self, name, default) for name, default in PARAMETERS.items()}

    def set_params(self, **params) -> _Estimator:
        """Change hyper-parameters (checked as in the constructor); a later ``fit`` uses them."""
        self._set(params)
        return self

    def _config(self, params: dict | None = None) -> dict:
        """The flat config of mmneuro.train.fit for these hyper-parameters (expert overrides if given)."""
        params = self.get_params() if params is None else params
        # tuples as lists: the config is checked as JSON (the schema's arrays), as from a YAML file
        return {"kind": self.kind} | {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()
                                      if not (k in MODALITIES and v is None)}

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != PARAMETERS[k])
        return f"{type(self).__name__}({changed})"

    # ---- training -----------------------------------------------------------------------
    def fit(self, ds: xr.Dataset | str | Path, progress: bool = False) -> _Estimator:
        """Train on ``ds`` (dataset.nc layout: its ``train`` syllables, early stopping on ``val``);
        nothing is written. ``progress``: print per-epoch losses on stderr. Returns self."""
        self._result = fit_model(ds, self._config(), None, progress=progress)
        return self

    def fit_transform(self, ds: xr.Dataset | str | Path, progress: bool = False) -> xr.DataArray:
        """:meth:`fit`, then :meth:`transform` of the same data."""
        return self.fit(ds, progress).transform(ds)

    @property
    def model_(self) -> MultimodalVAE:
        """The fitted torch model (mmneuro.models.MultimodalVAE), in eval mode."""
        return self._fitted().model

    @property
    def config_(self) -> dict:
        """The fitted model's config.json content: {"model": ModelConfig dict, "train": TrainConfig dict, …}."""
        return self._fitted().config

    @property
    def metrics_(self):
        """One row per epoch (pandas DataFrame): the columns of metrics.csv (train_/val_ loss terms, beta)."""
        import pandas as pd

        return pd.DataFrame(self._fitted().metrics)

    def _fitted(self) -> FitResult:
        result = getattr(self, "_result", None)
        if result is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(ds) or {type(self).__name__}.load(folder)")
        return result

    # ---- using the model ----------------------------------------------------------------
    def encode(self, ds: xr.Dataset, given: list[str] | str | None = None, batch_size: int = 256) -> xr.DataArray:
        """Posterior means of z given the ``given`` modalities (default: all the model has), per
        syllable of ``ds``: DataArray (syllable, latent) with ds's per-syllable coordinates."""
        model = self.model_
        given = self._names(given)
        means = self._batched(ds, given, batch_size, lambda x: model.encode(x).mean)
        return xr.DataArray(means, dims=("syllable", "latent"), coords={**_per_syllable(ds), "latent": np.arange(means.shape[1])},
                            name="latent_mean", attrs={"given": given})

    def transform(self, ds: xr.Dataset, batch_size: int = 256) -> xr.DataArray:
        """:meth:`encode` given every modality (sklearn's name)."""
        return self.encode(ds, None, batch_size)

    def predict(self, ds: xr.Dataset, given: list[str] | str | None = None, target: str | None = None,
                batch_size: int = 256) -> xr.DataArray:
        """Decoded mean of the ``target`` modality at the posterior mean given the ``given`` ones
        (default: every other modality): audio as ``spectrogram`` (syllable, freq, time), neural as
        the variable the model was trained on (``counts`` (syllable, unit, bin) or ``total_counts``)."""
        model = self.model_
        if target not in model.modalities:
            raise InputError("target", f"{target!r} is not a modality of this model; it has {model.modalities}")
        given = self._names(given, exclude=target)
        values = self._batched(ds, given, batch_size, lambda x: model.predict(x, given, target))
        var, dims = _OUTPUTS["audio" if target == "audio" else self._neural_input()]
        values = values[:, 0] if target == "audio" else values
        # ds's coordinates along the target's other dims (unit ids, freq_hz, …) where the sizes agree
        coords = {k: v for k, v in ds.coords.items() if v.dims and set(v.dims) <= set(dims[1:])
                  and all(ds.sizes[d] == values.shape[dims.index(d)] for d in v.dims)}
        return xr.DataArray(values, dims=dims, coords={**_per_syllable(ds), **coords}, name=var, attrs={"given": given, "target": target})

    def _names(self, given, exclude: str | None = None) -> list[str]:
        """``given`` as a list of the model's modalities (default: all but ``exclude``)."""
        modalities = self.model_.modalities
        names = [m for m in modalities if m != exclude] if given is None else [given] if isinstance(given, str) else list(given)
        unknown = [m for m in names if m not in modalities]
        if unknown or not names:
            raise InputError("given", f"expected a non-empty subset of the model's modalities {modalities}, got {names}")
        return names

    def _neural_input(self) -> str:
        return self.model_.config.preprocessing.get("neural_input", self.neural_input)

    def _batched(self, ds: xr.Dataset, given: list[str], batch_size: int, call) -> np.ndarray:
        """``call({modality: tensor})`` over ``ds``'s syllables in batches, concatenated (numpy)."""
        import torch

        arrays = training_arrays(ds, self._neural_input(), tuple(given), "dataset")
        n = len(next(iter(arrays.values())))
        if n == 0:
            raise InputError("dataset", "no syllables")
        out = []
        with torch.no_grad():
            for start in range(0, n, batch_size):
                out.append(call({m: torch.from_numpy(a[start:start + batch_size]) for m, a in arrays.items()}).cpu().numpy())
        return np.concatenate(out)

    # ---- persistence --------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write config.json, weights.pt and metrics.csv into ``folder`` (as ``mmneuro train`` does)."""
        return save_result(self._fitted(), folder)

    @classmethod
    def load(cls, folder: str | Path) -> _Estimator:
        """The estimator of a model folder written by :meth:`save` or ``mmneuro train``."""
        folder = Path(folder)
        model = load_model(folder)  # InputError for a folder without a model
        kind = model.config.kind
        if kind not in ESTIMATORS:
            raise InputError(folder, f"holds a {kind!r} model, which has no estimator (kinds: {sorted(ESTIMATORS)})")
        if cls is not _Estimator and cls.kind != kind:
            raise InputError(folder, f"holds a {kind!r} model, not {cls.kind!r}; load it with {ESTIMATORS[kind].__name__}.load")
        config = json.loads((folder / CONFIG_FILE).read_text())
        estimator = ESTIMATORS[kind](**_params_of(config, model.config))
        estimator._result = FitResult(model, config, _read_metrics(folder / METRICS_FILE))
        return estimator


class MVAE(_Estimator):
    """Product-of-experts VAE (Wu & Goodman 2018); hyper-parameters: see mmneuro.estimator."""

    kind = "mvae"


class MMVAE(_Estimator):
    """Mixture-of-experts VAE trained by IWAE/DReG (Shi et al. 2019); hyper-parameters: see mmneuro.estimator."""

    kind = "mmvae"


class MoPoE(_Estimator):
    """Mixture-of-products-of-experts VAE (Sutter et al. 2021); hyper-parameters: see mmneuro.estimator."""

    kind = "mopoe"


ESTIMATORS: dict[str, type[_Estimator]] = {cls.kind: cls for cls in (MVAE, MMVAE, MoPoE)}
# the constructor's keywords, as tab completion and help() show them
_Estimator.__init__.__signature__ = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in PARAMETERS.items()])


def load(folder: str | Path) -> _Estimator:
    """The MVAE, MMVAE or MoPoE estimator of a model folder, whichever kind it holds."""
    return _Estimator.load(folder)


def _check(kind: str, where: str, config: dict) -> None:
    """InputError naming ``where`` for a hyper-parameter of the wrong type, range or value, before
    any data are read: the training config's schema, then ModelConfig on placeholder experts."""
    from mmneuro.config import check_train_settings

    check_train_settings(config, where)
    model, train = split_config(config)
    fields = {k: v for k, v in model.items() if k not in MODALITIES and k != "modalities"}
    unknown = set(train.modalities or ()) - set(MODALITIES)
    if unknown:
        raise InputError(where, f"modalities: unknown {sorted(unknown)}; expected a subset of {MODALITIES}")
    placeholders = {m: ExpertConfig(shape=[1]) for m in train.modalities or MODALITIES}
    try:
        ModelConfig(**fields, modalities=placeholders).likelihood_weights()
    except InputError as err:
        raise InputError(where, f"{err.where}: {err.problem}") from err


def _params_of(config: dict, model: ModelConfig) -> dict:
    """Hyper-parameters that rebuild a saved model: its ModelConfig and training config fields, and
    each expert's settings where they differ from default_expert's."""
    saved = {k: v for k, v in config["model"].items() if k in PARAMETERS and k != "modalities"}
    saved |= {k: v for k, v in config.get("train", {}).items() if k in PARAMETERS}
    for name, expert in model.modalities.items():
        default = dataclasses.asdict(default_expert(name, expert.shape, model.kind))
        changed = {k: v for k, v in dataclasses.asdict(expert).items() if k != "shape" and v != default[k]}
        saved[name] = changed or None
    return saved


def _read_metrics(path: Path) -> list[dict]:
    """metrics.csv -> its rows (floats; ``epoch`` int; empty cells left out); [] without the file."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items() if v != ""}
                for row in csv.DictReader(handle)]


def _per_syllable(ds: xr.Dataset) -> dict:
    """ds's coordinates along syllable alone (ids, split, has_<m>, onset_s, …)."""
    return {k: v for k, v in ds.coords.items() if v.dims == ("syllable",)}

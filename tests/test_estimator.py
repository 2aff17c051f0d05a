"""mmneuro.estimator: MVAE / MMVAE / MoPoE fit in memory, match mmneuro.train.fit, save/load, predict."""

import dataclasses
import inspect

import numpy as np
import pytest
import torch
from test_train import SMALL, planted_dataset

import mmneuro as mm
import mmneuro.estimator as estimator
from mmneuro.errors import InputError
from mmneuro.models import ModelConfig
from mmneuro.train import TrainConfig, fit

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*posterior collapsed:RuntimeWarning")
TINY = SMALL | {"epochs": 2, "patience": 100}  # min_steps=0 (SMALL): exactly 2 epochs


@pytest.fixture(scope="module")
def ds():
    return planted_dataset(n=48)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_api_names_are_the_estimators():
    assert (mm.MVAE, mm.MMVAE, mm.MoPoE) == (estimator.MVAE, estimator.MMVAE, estimator.MoPoE)


def test_defaults_are_the_config_dataclasses():
    signature = inspect.signature(mm.MoPoE).parameters
    for cls in (ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            if f.name not in ("kind", "modalities", "preprocessing") or cls is TrainConfig:
                assert signature[f.name].default == f.default == getattr(mm.MoPoE(), f.name)


@pytest.mark.parametrize("cls", [mm.MVAE, mm.MMVAE, mm.MoPoE])
def test_fit_writes_nothing_and_equals_train_fit(cls, ds, tmp_path, monkeypatch):
    reference = fit(ds, TINY | {"kind": cls.kind}, tmp_path / "trained", progress=False)
    rows = estimator._read_metrics(tmp_path / "trained" / "metrics.csv")
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setattr("mmneuro.train.atomic_path", None)  # any write through the training code fails
    monkeypatch.setattr("mmneuro.models.persistence.atomic_path", None)
    model = cls(**TINY).fit(ds)
    model.transform(ds), model.predict(ds, target="audio")
    assert list(empty.iterdir()) == []
    assert _same_weights(model.model_, reference)
    assert model._result.metrics == rows  # every per-epoch loss, exactly (metrics.csv holds repr floats)
    assert model.metrics_["epoch"].tolist() == [1, 2]


def test_encode_and_predict_give_labelled_arrays(ds):
    model = mm.MoPoE(**TINY).fit(ds)
    z = model.transform(ds)
    assert z.dims == ("syllable", "latent") and z.shape == (48, 2)
    assert (z["syllable"] == ds["syllable"]).all() and (z["split"] == ds["split"]).all()
    audio_only = model.encode(ds, given="audio")
    assert audio_only.shape == z.shape and not np.array_equal(audio_only.values, z.values)
    images = model.predict(ds, given=["neural"], target="audio")
    assert images.dims == ("syllable", "freq", "time") and images.shape == (48, 16, 16) and images.name == "spectrogram"
    counts = model.predict(ds, target="neural")  # given: every other modality
    assert counts.dims == ("syllable", "unit", "bin") and (counts["unit"] == ds["unit"]).all()
    with torch.no_grad():
        expected = model.model_.predict({"neural": torch.from_numpy(ds["counts"].values.astype(np.float32))},
                                        ["neural"], "audio")[:, 0].numpy()
    np.testing.assert_array_equal(images.values, expected)
    # batches do not change the answer (each syllable is encoded on its own)
    np.testing.assert_allclose(model.transform(ds, batch_size=7).values, z.values, rtol=1e-6, atol=1e-6)


def test_save_load_round_trips_and_refits_identically(ds, tmp_path):
    model = mm.MMVAE(**TINY).fit(ds)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "metrics.csv", "weights.pt"]
    loaded = mm.MMVAE.load(tmp_path / "m")
    assert type(loaded) is mm.MMVAE and loaded.latent_dim == 2 and loaded.audio == TINY["audio"]
    np.testing.assert_array_equal(loaded.predict(ds, target="audio").values, model.predict(ds, target="audio").values)
    np.testing.assert_array_equal(loaded.transform(ds).values, model.transform(ds).values)
    assert loaded._result.metrics == model._result.metrics and loaded.config_ == model.config_
    # the loaded hyper-parameters rebuild the same training
    assert _same_weights(type(loaded)(**loaded.get_params()).fit(ds).model_, model.model_)


def test_a_folder_written_by_train_fit_loads(ds, tmp_path):
    trained = fit(ds, TINY | {"kind": "mopoe", "neural_input": "total_counts"}, tmp_path / "t", progress=False)
    loaded = estimator.load(tmp_path / "t")  # whichever kind the folder holds
    assert type(loaded) is mm.MoPoE and loaded.neural_input == "total_counts" and _same_weights(loaded.model_, trained)
    assert loaded.predict(ds, given="audio", target="neural").dims == ("syllable", "unit")
    with pytest.raises(InputError, match="holds a 'mopoe' model, not 'mvae'; load it with MoPoE.load"):
        mm.MVAE.load(tmp_path / "t")
    with pytest.raises(InputError, match="file not found"):
        mm.MoPoE.load(tmp_path / "nothing")


def test_bad_arguments_are_clear_errors(ds):
    with pytest.raises(TypeError, match=r"MoPoE: unknown hyper-parameters \['latnt_dim'\]; known: K, audio"):
        mm.MoPoE(latnt_dim=4)
    with pytest.raises(InputError, match=r"MMVAE: latent_dim: must be >= 1 \(got 0\)"):
        mm.MMVAE(latent_dim=0)
    with pytest.raises(InputError, match="MMVAE: iwae_variant"):
        mm.MMVAE(iwae_variant="lose")
    with pytest.raises(InputError, match=r"MVAE: modalities: unknown \['lfp'\]"):
        mm.MVAE(modalities=["lfp"])
    model = mm.MVAE(**TINY)
    with pytest.raises(InputError, match="lr"):
        model.set_params(lr="fast")
    assert model.lr == TINY["lr"]  # a refused change leaves the estimator as it was
    with pytest.raises(estimator.NotFittedError, match="not fitted yet"):
        model.transform(ds)
    model.set_params(epochs=1).fit(ds)
    with pytest.raises(InputError, match="'lfp' is not a modality"):
        model.predict(ds, target="lfp")
    with pytest.raises(InputError, match="given"):
        model.encode(ds, given=["audio", "lfp"])

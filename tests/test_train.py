"""fit(): learning on planted data, resume after a kill, NaN stop, bad input, the CLI."""

import json

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.special import xlogy

from mmneuro.cli import main as cli_main
from mmneuro.errors import InputError
from mmneuro.io import write_netcdf
from mmneuro.models import load_model
from mmneuro.train import NonFiniteLossError, TrainConfig, fit, max_epochs, resolve_precision

torch.set_num_threads(1)

SMALL = {"latent_dim": 2, "batch_size": 32, "lr": 3e-3, "seed": 0, "min_steps": 0,
         "audio": {"channels": [8, 8], "hidden": [32]}, "neural": {"hidden": [32]}}


def planted_dataset(n=160, side=16, units=6, bins=3, seed=0) -> xr.Dataset:
    """Latent u ∈ [0.2, 0.8]²: a Gaussian blob at (freq, time) = u·side, and Poisson counts whose
    rates are smooth functions of u (unit 0 ∝ u₀, unit 1 ∝ u₁, …). Split 3:1 train/val."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.2, 0.8, size=(n, 2))
    grid = np.arange(side) + 0.5
    f = np.exp(-0.5 * ((grid[None, :] - u[:, :1] * side) / 1.5) ** 2)
    t = np.exp(-0.5 * ((grid[None, :] - u[:, 1:] * side) / 1.5) ** 2)
    spec = (f[:, :, None] * t[:, None, :]).astype(np.float32)
    weights = rng.normal(size=(2, units))
    rate = 3.0 * np.exp(1.5 * (u - 0.5) @ weights)[:, :, None] * np.ones((1, 1, bins))
    counts = rng.poisson(rate).astype(np.int32)
    split = np.where(np.arange(n) % 4 == 3, "val", "train")
    syllable = [f"demo01-{i:05d}" for i in range(n)]
    return xr.Dataset(
        {"spectrogram": (("syllable", "freq", "time"), spec),
         "counts": (("syllable", "unit", "bin"), counts),
         "total_counts": (("syllable", "unit"), counts.sum(-1))},
        coords={"syllable": syllable, "split": ("syllable", split), "unit": np.arange(units)},
        attrs={"params": json.dumps({"seed": seed})},
    )


def _val_errors(model, ds):
    """Audio MSE and neural Poisson deviance of reconstructions on the val syllables."""
    val = ds.isel(syllable=np.flatnonzero(ds["split"].values == "val"))
    x = {"audio": torch.from_numpy(val["spectrogram"].values[:, None]),
         "neural": torch.from_numpy(val["counts"].values.astype(np.float32))}
    rec = model.reconstruct(x)
    mse = float(((rec["audio"] - x["audio"]) ** 2).mean())
    y, mu = x["neural"], rec["neural"]
    dev = float((2 * (torch.xlogy(y, y / mu) - (y - mu))).mean())
    cross = float(((model.cross_generate(x, ["neural"], "audio") - x["audio"]) ** 2).mean())
    return mse, dev, cross


def test_training_on_planted_data_learns_and_reconstructs(tmp_path):
    ds = planted_dataset()
    config = SMALL | {"kind": "mvae", "epochs": 60, "patience": 100, "output_bias_init": True}
    untrained = fit(ds, config | {"epochs": 1, "lr": 1e-12}, tmp_path / "untrained", progress=False)
    model = fit(ds, config, tmp_path / "mvae", progress=False)
    metrics = np.genfromtxt(tmp_path / "mvae" / "metrics.csv", delimiter=",", names=True)
    assert len(metrics) == 60
    assert metrics["val_loss"][-5:].mean() < 0.6 * metrics["val_loss"][0]
    _, dev0, _ = _val_errors(untrained, ds)
    mse, dev, cross = _val_errors(model, ds)
    # against baselines without a model: the mean training image (an untrained identity-mean decoder
    # already draws ~0, close to these sparse images), another syllable's image, and the mean training
    # rates, where fit starts the count decoder (untrained deviance 1.28, mean rates 1.29; 5.8 before
    # output_bias_init). Measured over seeds 0-2: mse 0.0035-0.0078 (mean image 0.0228), deviance
    # 1.10-1.19 (1.16-1.31 without output_bias_init), neural→audio 0.024-0.039 (this small MLP learns
    # little neural→audio: between the mean image and another syllable's, 0.049)
    split = ds["split"].values
    images = ds["spectrogram"].values
    val = images[split == "val"]
    mean_mse = float(((val - images[split == "train"].mean(0)) ** 2).mean())
    other_mse = float(((val - val[np.random.default_rng(0).permutation(len(val))]) ** 2).mean())
    counts = ds["counts"].values.astype(np.float64)
    y, mu = counts[split == "val"], (counts[split == "train"].sum(0) + 0.5) / (split == "train").sum()
    mean_rate_dev = float((2 * (xlogy(y, y / mu) - (y - mu))).mean())
    assert dev0 < 1.02 * mean_rate_dev  # fit set the count decoder's output bias
    assert mse < 0.4 * mean_mse and dev < 0.95 * dev0 and cross < 0.9 * other_mse
    again = load_model(tmp_path / "mvae")
    for p, q in zip(model.parameters(), again.parameters()):
        torch.testing.assert_close(p, q)


def test_metrics_carry_each_unimodal_kl_and_a_collapsed_modality_is_warned(tmp_path):
    import warnings

    import pandas as pd

    from mmneuro.train import posterior_kl

    ds = planted_dataset()
    config = SMALL | {"kind": "mopoe", "epochs": 15, "patience": 100}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", RuntimeWarning)
        fit(ds, config, tmp_path / "ok", progress=False)
    metrics = pd.read_csv(tmp_path / "ok" / "metrics.csv")
    kl = metrics[[f"{s}_{t}_unimodal_{m}" for s in ("train", "val") for t in ("kl", "info") for m in ("audio", "neural")]]
    assert len(kl) == 15 and kl.notna().all().all()
    assert (metrics.val_info_unimodal_audio <= metrics.val_kl_unimodal_audio + 1e-6).all()
    # measured at the best epoch: audio 1.5 nats (GroupNorm conv expert), neural 0.2 (this small MLP
    # learns slowly: 1.5 nats after 40 epochs); the warnings name exactly the modalities below 1 nat
    info = posterior_kl(metrics.to_dict("records"))
    assert info["audio"] > 1.0
    warned = {m for m in ("audio", "neural") if any(f"the {m} posterior collapsed" in str(w.message) for w in record)}
    assert warned == {m for m, v in info.items() if v < 1.0}
    # the same data with one image for every syllable: the audio encoder has nothing to say (its KL to
    # the prior can still be several nats: a constant offset, which the info bound does not count)
    flat = ds.copy()
    flat["spectrogram"] = xr.full_like(ds["spectrogram"], 0) + ds["spectrogram"].mean("syllable")
    with pytest.warns(RuntimeWarning, match="audio posterior collapsed"):
        fit(flat, config, tmp_path / "flat", progress=False)



def test_the_report_reads_the_collapse_alarm_without_importing_torch(tmp_path):
    """torch's import costs ~2.5 s CPU; the report stage runs at the end of every workflow, alone."""
    import subprocess
    import sys

    (tmp_path / "metrics.csv").write_text("epoch,val_loss,val_info_unimodal_audio,val_kl_unimodal_audio\n1,-5,0.4,2.0\n")
    code = ("import sys; from pathlib import Path; from mmneuro.report.html import _posterior_block; "
            f"block = _posterior_block(Path({str(tmp_path / 'metrics.csv')!r})); "
            "assert 'collapsed' in block, block; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)

def _kill_after(epoch_to_kill):
    def hook(epoch):
        if epoch == epoch_to_kill:
            raise KeyboardInterrupt

    return hook


def fit_killed_and_resumed(ds, config, tmp_path, kill_after):
    """(uninterrupted fit, fit killed after epoch ``kill_after`` and then resumed) in tmp_path/full, /resumed."""
    full = fit(ds, config, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(ds, config, tmp_path / "resumed", on_epoch_end=_kill_after(kill_after), progress=False)
    return full, fit(ds, config, tmp_path / "resumed", progress=False)


@pytest.mark.parametrize("kind", ["mmvae", "mopoe"])
def test_resume_after_kill_reproduces_uninterrupted_run(tmp_path, kind):
    ds = planted_dataset(n=64)
    config = SMALL | {"kind": kind, "K": 3, "epochs": 4, "beta_warmup_epochs": 2, "mvae_random_subsets": 0}
    full = fit(ds, config, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(ds, config, tmp_path / "resumed", on_epoch_end=_kill_after(2), progress=False)
    assert not (tmp_path / "resumed" / "weights.pt").exists()  # killed: no final weights yet
    resumed = fit(ds, config, tmp_path / "resumed", progress=False)
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    assert (tmp_path / "full" / "metrics.csv").read_text() == (tmp_path / "resumed" / "metrics.csv").read_text()
    assert (tmp_path / "full" / "config.json").read_text() == (tmp_path / "resumed" / "config.json").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")
@pytest.mark.parametrize("kind", ["mvae", "mmvae", "mopoe"])
def test_fit_on_cuda_trains_and_resumes_like_on_one_device(tmp_path, kind):
    """Sampling on the GPU draws from CUDA generators (a CPU one raises there), every kind, factorised."""
    ds = planted_dataset(n=64)
    config = SMALL | {"kind": kind, "K": 3, "epochs": 3, "device": "cuda", "private_dims": 1,
                      "mvae_random_subsets": 1}
    full, resumed = fit_killed_and_resumed(ds, config, tmp_path, kill_after=2)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert np.isfinite(np.loadtxt(tmp_path / "full" / "metrics.csv", delimiter=",", skiprows=1)).all()


def test_fit_accepts_a_model_config(tmp_path):
    from mmneuro.models import ModelConfig, default_expert

    neural = default_expert("neural", [6, 3])
    neural.likelihood, neural.hidden = "negbinom", [16]
    model = fit(planted_dataset(n=32), ModelConfig(kind="vae", latent_dim=2, modalities={"neural": neural}),
                tmp_path / "m", progress=False)
    assert model.modalities == ["neural"] and model.config.modalities["neural"].likelihood == "negbinom"
    assert model.config.modalities["neural"].hidden == [16]


def test_resume_with_a_different_config_is_refused(tmp_path):
    ds = planted_dataset(n=32)
    fit(ds, SMALL | {"epochs": 1}, tmp_path / "m", progress=False)
    with pytest.raises(InputError, match="checkpoint.pt"):
        fit(ds, SMALL | {"epochs": 1, "lr": 1e-4}, tmp_path / "m", progress=False)


def test_stale_checkpoint_of_other_data_is_refused_or_retrained(tmp_path, capsys):
    """Same shapes, other values: a finished or killed run there must not lend its weights."""
    config = SMALL | {"epochs": 2}
    ds, other = planted_dataset(n=32, seed=0), planted_dataset(n=32, seed=1)
    other.attrs = ds.attrs  # the same recorded parameters: only the values differ
    fit(ds, config, tmp_path / "m", progress=False)
    with pytest.raises(InputError, match="checkpoint.pt: checkpoint was written for different training data"):
        fit(other, config, tmp_path / "m", progress=False)
    with pytest.raises(KeyboardInterrupt):  # a killed run resumed on other data is refused too
        fit(ds, config, tmp_path / "killed", on_epoch_end=_kill_after(1), progress=False)
    with pytest.raises(InputError, match="different training data"):
        fit(other, config, tmp_path / "killed", progress=False)

    path = tmp_path / "other.nc"
    write_netcdf(other, path)
    args = ["train", str(path), "--out", str(tmp_path / "m"), "--device", "cpu", "--quiet",
            *(f"--set={k}={json.dumps(v)}" for k, v in config.items())]
    assert cli_main(args) == 2
    assert "checkpoint.pt" in capsys.readouterr().err
    assert cli_main(args + ["--restart"]) == 0  # the workflow's choice: retrain from scratch
    fresh = fit(other, config, tmp_path / "fresh", progress=False)
    for (name, p), q in zip(fresh.state_dict().items(), load_model(tmp_path / "m").state_dict().values()):
        assert torch.equal(p, q), name
    assert (tmp_path / "m" / "metrics.csv").read_text() == (tmp_path / "fresh" / "metrics.csv").read_text()


def test_min_steps_raises_the_epochs_of_small_datasets_only(tmp_path):
    # the defaults: the demo's 677 training syllables keep 30 epochs (660 steps), 290 get 60
    assert max_epochs(TrainConfig(), 677) == 30 and max_epochs(TrainConfig(), 290) == 60
    ds = planted_dataset()  # 120 training syllables: 4 batches of 32 per epoch
    for min_steps, epochs in ((0, 1), (10, 3), (4, 1)):
        fit(ds, SMALL | {"epochs": 1, "min_steps": min_steps, "patience": 100}, tmp_path / str(min_steps), progress=False)
        assert len((tmp_path / str(min_steps) / "metrics.csv").read_text().splitlines()) == 1 + epochs
        assert json.loads((tmp_path / str(min_steps) / "config.json").read_text())["train"]["max_epochs"] == epochs


def test_finished_checkpoint_rewrites_every_output(tmp_path):
    """A rerun that finds a finished matching checkpoint (Snakemake deleted the declared outputs)
    writes weights, config and metrics again, identical to the first run's."""
    ds = planted_dataset(n=32)
    fit(ds, SMALL | {"epochs": 1}, tmp_path / "m", progress=False)
    before = {n: (tmp_path / "m" / n).read_bytes() for n in ("metrics.csv", "config.json")}
    for name in ("metrics.csv", "config.json", "weights.pt"):
        (tmp_path / "m" / name).unlink()
    fit(ds, SMALL | {"epochs": 1}, tmp_path / "m", progress=False)
    assert {n: (tmp_path / "m" / n).read_bytes() for n in before} == before
    assert (tmp_path / "m" / "weights.pt").is_file() and not list((tmp_path / "m").glob(".*"))


def test_non_finite_loss_stops_with_epoch_and_term(tmp_path):
    ds = planted_dataset(n=32)
    config = SMALL | {"epochs": 2, "likelihood_weighting": {"audio": float("inf"), "neural": 1.0}}
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 0: loss term 'recon_audio\+neural'"):
        fit(ds, config, tmp_path / "nan", progress=False)
    assert not (tmp_path / "nan" / "weights.pt").exists()


def test_partially_missing_modalities_train_finitely(tmp_path):
    ds = planted_dataset(n=64)
    has_neural = (np.arange(64) % 3 != 0).astype(np.int8)
    has_neural[:32] = 0  # the whole first batch (without shuffling) lacks neural data in places
    counts = ds["counts"].values.astype(np.float32)
    counts[has_neural == 0] = np.nan
    ds = ds.assign(counts=(("syllable", "unit", "bin"), counts)).assign_coords(has_neural=("syllable", has_neural))
    model = fit(ds, SMALL | {"kind": "mmvae", "K": 2, "epochs": 2}, tmp_path / "m", progress=False)
    metrics = np.genfromtxt(tmp_path / "m" / "metrics.csv", delimiter=",", names=True)
    assert np.isfinite(metrics["train_loss"]).all() and np.isfinite(metrics["val_loss"]).all()
    x = {"audio": torch.from_numpy(ds["spectrogram"].values[:8, None]),
         "neural": torch.from_numpy(counts[:8])}
    assert torch.isfinite(model.encode(x).mean).all()


def test_cli_trains_and_rejects_bad_input(tmp_path, capsys):
    path = tmp_path / "dataset.nc"
    write_netcdf(planted_dataset(n=32), path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("latent_dim: 2\nbatch_size: 16\nmin_steps: 0\naudio:\n  channels: [8, 8]\n  hidden: [16]\nneural:\n  hidden: [16]\n")
    rc = cli_main(["train", str(path), "--model", "mopoe", "--out", str(tmp_path / "out"), "--config", str(cfg),
                   "--set", "epochs=2", "--set", "neural.likelihood=negbinom", "--set", "neural_input=total_counts",
                   "--device", "cpu", "--quiet"])
    assert rc == 0
    for name in ("config.json", "weights.pt", "metrics.csv", "checkpoint.pt"):
        assert (tmp_path / "out" / name).is_file()
    model = load_model(tmp_path / "out")
    assert model.config.kind == "mopoe" and model.config.modalities["neural"].shape == [6]
    assert model.config.modalities["neural"].likelihood == "negbinom"
    assert model.config.preprocessing["dataset_params"] == {"seed": 0}

    bad = tmp_path / "bad.nc"
    write_netcdf(planted_dataset(n=32).drop_vars("spectrogram"), bad)
    rc = cli_main(["train", str(bad), "--out", str(tmp_path / "bad_out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and "spectrogram" in err
    assert not (tmp_path / "bad_out" / "weights.pt").exists()
    rc = cli_main(["train", str(path), "--out", str(tmp_path / "o2"), "--set", "latent_dims=3", "--quiet"])
    assert rc == 2 and "latent_dims" in capsys.readouterr().err


def test_set_reads_exponent_floats_as_numbers():
    from mmneuro.cli.train import apply_overrides

    config = apply_overrides({}, ["lr=3e-3", "beta=1E+1", "neural.scale=-.5e0", "kind=mvae", "seed=0", "tag=3e"])
    assert config == {"lr": 0.003, "beta": 10.0, "neural": {"scale": -0.5}, "kind": "mvae", "seed": 0, "tag": "3e"}
    assert apply_overrides({}, ['lr="3e-3"'])["lr"] == 0.003  # the workflow passes values as JSON strings


@pytest.mark.parametrize("setting, message", [
    ("latent_dim=2.5", "latent_dim: 2.5 is not of type integer"),
    ("epochs=ten", "epochs: 'ten' is not of type integer"),
    ("beta=-1", "beta: must be >= 0 (got -1)"),
    ("min_steps=-1", "min_steps: must be >= 0 (got -1)"),
    ("audio.hiden=[8]", "audio: 'hiden' was unexpected"),
    ("precision=half", "precision: 'half' is not one of auto, float32, bfloat16"),
])
def test_mistyped_settings_fail_before_the_data_is_read(tmp_path, capsys, setting, message):
    rc = cli_main(["train", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "o"), "--set", setting, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and f"--set: {message}" in err and "missing.nc" not in err
    assert not (tmp_path / "o").exists()


def test_precision_auto_trains_as_the_precision_it_resolves_to_and_records_it(tmp_path):
    """``auto`` is bfloat16 on a CPU with native bf16 kernels, else float32 (always float32 on CUDA);
    config.json records the precision used, and auto trains exactly as that precision named."""
    ds = planted_dataset(n=64)
    assert resolve_precision("auto", torch.device("cuda")) == "float32"
    assert resolve_precision("float32", torch.device("cpu")) == "float32"
    used = resolve_precision("auto", torch.device("cpu"))
    weights = {}
    for precision in ("auto", used, "float32"):
        fit(ds, SMALL | {"epochs": 1, "precision": precision}, tmp_path / precision, progress=False)
        config = json.loads((tmp_path / precision / "config.json").read_text())
        assert config["train"]["precision"] == (used if precision == "auto" else precision)
        weights[precision] = torch.load(tmp_path / precision / "weights.pt")
    for name, value in weights["auto"].items():
        assert torch.equal(value, weights[used][name])
    if used == "bfloat16":  # the setting reaches the networks: training in float32 ends elsewhere
        assert any(not torch.equal(v, weights["float32"][k]) for k, v in weights["auto"].items())


def test_all_nan_modality_is_refused_and_no_validation_split_warns(tmp_path):
    ds = planted_dataset(n=32)
    blank = ds.assign(spectrogram=ds["spectrogram"] * np.nan)
    with pytest.raises(InputError, match="spectrogram is NaN .* for every syllable"):
        fit(blank, SMALL | {"epochs": 1}, tmp_path / "nan", progress=False)
    assert not (tmp_path / "nan").exists()
    tiny = ds.isel(syllable=slice(0, 3))  # rows 0-2: all 'train'
    with pytest.warns(UserWarning, match="no validation syllables"):
        fit(tiny, SMALL | {"epochs": 1}, tmp_path / "tiny", progress=False)

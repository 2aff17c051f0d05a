"""Applying a trained model to new sessions: audio-only predictions vs held-back truth, determinism,
other sampling rates, unit mismatches, the out-of-distribution check and the CLI."""

import re
import shutil

import numpy as np
import pytest
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.io import read_netcdf, write_netcdf

IMAGE = {"n_freq": 32, "n_time": 32}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Demo sessions demo01-03; a MoPoE trained on demo01+02 (fast MLP experts); demo03 held back."""
    import torch

    from mmneuro.audio import resolve_params, syllable_dataset
    from mmneuro.dataset import assemble
    from mmneuro.neural import BinParams, bin_counts, fit_clock, read_units
    from mmneuro.synth import generate_demo
    from mmneuro.train import fit

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("apply")
    generate_demo(root / "demo", n_sessions=3, duration_s=90.0, seed=0)
    params = resolve_params("mouse", IMAGE)
    parts = []
    for s in ("demo01", "demo02"):
        d = root / "demo" / s
        syl = syllable_dataset(d / "audio.wav", s, params)
        clock = fit_clock(np.load(d / "sync_audio_s.npy"), np.load(d / "sync_neural_s.npy"))
        counts = bin_counts(read_units(d / "phy", "phy"), syl, BinParams(), clock)
        write_netcdf(syl, root / f"{s}_syllables.nc")
        write_netcdf(counts, root / f"{s}_counts.nc")
        parts.append((s, root / f"{s}_syllables.nc", root / f"{s}_counts.nc"))
    write_netcdf(assemble(parts, seed=0), root / "results" / "dataset.nc")
    config = {"kind": "mopoe", "latent_dim": 8, "epochs": 40, "min_steps": 0, "batch_size": 32, "lr": 2e-3, "seed": 0,
              "audio": {"network": "mlp", "hidden": [128]}, "neural": {"hidden": [128]}}
    fit(root / "results" / "dataset.nc", config, root / "results" / "models" / "mopoe", progress=False)
    return root


def _apply(world, sessions, out, **kw):
    from mmneuro.apply import ApplySettings, apply_model

    settings = ApplySettings(n_samples=kw.pop("n_samples", 20))
    return apply_model(world / "results" / "models" / "mopoe", sessions, out, settings=settings,
                       progress=False, **kw)


def _complete(world, sid="demo03"):
    from mmneuro.config import Session

    d = world / "demo" / sid
    return Session("full", audio=d / "audio.wav", neural=d / "phy", neural_format="phy",
                      sync_audio=d / "sync_audio_s.npy", sync_neural=d / "sync_neural_s.npy")


def test_training_stores_the_stage_parameters(world):
    from mmneuro.apply import stored_params
    from mmneuro.models import load_model

    params = stored_params(load_model(world / "results" / "models" / "mopoe"))
    assert params["audio"]["n_freq"] == 32 and params["audio"]["window_s"] == pytest.approx(0.004096)
    assert params["neural"]["bin_s"] == pytest.approx(0.01) and params["neural"]["labels"] == ["good"]
    assert params["neural_input"] == "counts"


def test_audio_only_session_predicts_held_back_activity_deterministically(world, tmp_path):
    from mmneuro.config import Session

    wav = world / "demo" / "demo03" / "audio.wav"
    folders = _apply(world, [Session("audio", audio=wav), _complete(world)], tmp_path / "a")
    audio_only, full = (read_netcdf(f / "applied.nc") for f in folders)
    assert "counts" not in audio_only and audio_only["has_neural"].values.sum() == 0
    # same audio, same seed: the audio-only prediction is the complete session's audio->neural one
    np.testing.assert_array_equal(audio_only["predicted_counts"].values, full["predicted_counts"].values)
    assert (audio_only["predicted_counts_sd"].values > 0).mean() > 0.9  # posterior sampling spreads
    # against the held-back truth (the analysis' per-unit metrics on spikes per window)
    r = full["pearson_r"].sel(predictor="model").values
    base_r = np.nan_to_num(full["pearson_r"].sel(predictor="mean_rate").values)
    dev = full["deviance_explained"].sel(predictor=["model", "mean_rate"]).mean("unit").values
    print(f"audio->neural mean per-unit r on held-back demo03: {np.nanmean(r):.3f} (mean rate {base_r.mean():.3f})")
    assert np.nanmean(r) > 0.25 and np.nanmean(r) > base_r.mean() + 0.2
    assert dev[0] > dev[1]
    again = read_netcdf(_apply(world, [Session("audio", audio=wav)], tmp_path / "b")[0] / "applied.nc")
    xr.testing.assert_identical(audio_only, again)
    report = (folders[0] / "report.html").read_text()
    text = re.sub(r"<script.*?</script>", "", report, flags=re.S)  # bokeh's library escapes markup itself
    assert text.count("data:image/png;base64") >= 2 and "<h2>" in text and "&lt;" not in text
    assert "Latent map (audio)" in text and "Hover a point to see its spectrogram" in text


def test_apply_report_in_a_browser(world, tmp_path):
    """The applied session's report in headless Chromium: no console error, images load, no overflow,
    the latent map's hover shows the syllable's spectrogram (skips without chromium)."""
    from browser_helpers import assert_works_in_a_browser, check_page, chromium, screenshot

    chromium()
    folder = _apply(world, [_complete(world)], tmp_path / "a")[0]
    assert_works_in_a_browser(check_page(folder / "report.html", tmp_path))
    screenshot(folder / "report.html", "apply_report_first_screen.png")


def test_neural_only_session_gets_embeddings_and_spectrograms(world, tmp_path):
    from mmneuro.config import Session

    syl = read_netcdf(world / "demo01_syllables.nc")
    csv = tmp_path / "syllables.csv"
    syl[["onset_s", "offset_s"]].to_dataframe()[["onset_s", "offset_s"]].to_csv(csv, index=False)
    d = world / "demo" / "demo01"
    session = Session("neural", neural=d / "phy", neural_format="phy", syllables=csv,
                         sync_audio=d / "sync_audio_s.npy", sync_neural=d / "sync_neural_s.npy")
    out = read_netcdf(_apply(world, [session], tmp_path / "n")[0] / "applied.nc")
    assert list(out["conditioning"].values) == ["neural"]
    pred = out["predicted_spectrogram"].transpose("syllable", "freq", "time").values
    assert pred.shape == (syl.sizes["syllable"], 32, 32) and out.sizes["freq"] == 32
    # a training session: the spectrogram predicted from its spikes resembles its own more than others'
    true = syl["spectrogram"].values.reshape(len(pred), -1)
    err_own = ((pred.reshape(len(pred), -1) - true) ** 2).mean()
    err_shuffled = ((pred.reshape(len(pred), -1) - np.roll(true, 7, axis=0)) ** 2).mean()
    assert err_own < err_shuffled


def test_other_sampling_rate_gives_the_same_result(world, tmp_path):
    import soundfile as sf
    from scipy.signal import resample_poly

    from mmneuro.config import Session

    wav = world / "demo" / "demo03" / "audio.wav"
    samples, rate = sf.read(wav, dtype="float64")
    sf.write(tmp_path / "300k.wav", resample_poly(samples, 6, 5), int(rate * 6 // 5), subtype="PCM_16")
    a, b = (read_netcdf(f / "applied.nc") for f in _apply(
        world, [Session("a", audio=wav), Session("b", audio=tmp_path / "300k.wav")], tmp_path / "out"))
    onsets_a, onsets_b = a["onset_s"].values, b["onset_s"].values
    j = np.abs(onsets_a[:, None] - onsets_b[None]).argmin(1)
    matched = np.abs(onsets_a - onsets_b[j]) < 0.003
    assert matched.mean() > 0.95
    za = a["embedding_mean"].sel(conditioning="audio").values[matched]
    zb = b["embedding_mean"].sel(conditioning="audio").values[j[matched]]
    pa = a["predicted_counts"].values[matched]
    pb = b["predicted_counts"].values[j[matched]]
    print(f"300 vs 250 kHz: embedding r {np.corrcoef(za.ravel(), zb.ravel())[0, 1]:.4f}, "
          f"predicted counts r {np.corrcoef(pa.ravel(), pb.ravel())[0, 1]:.4f}")
    assert np.corrcoef(za.ravel(), zb.ravel())[0, 1] > 0.98
    assert np.corrcoef(pa.ravel(), pb.ravel())[0, 1] > 0.98


def test_different_units_are_a_clear_error_and_write_nothing(world, tmp_path):
    session = _complete(world)
    phy = tmp_path / "phy"
    shutil.copytree(session.neural, phy)
    table = (phy / "cluster_group.tsv").read_text().splitlines()
    first_good = next(i for i, line in enumerate(table) if line.endswith("good"))
    table[first_good] = table[first_good].replace("good", "noise")
    (phy / "cluster_group.tsv").write_text("\n".join(table) + "\n")
    from dataclasses import replace

    with pytest.raises(InputError, match=r"units .*the model was trained on") as err:
        _apply(world, [replace(session, neural=phy)], tmp_path / "out")
    assert str(phy) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_ood_check_flags_a_session_unlike_the_training_data(world):
    from mmneuro.apply import ApplySettings, apply_to_data, stored_params
    from mmneuro.apply.pipeline import load_reference
    from mmneuro.models import load_model

    model = load_model(world / "results" / "models" / "mopoe")
    params = stored_params(model)
    ref = load_reference(world / "results" / "dataset.nc", model, "counts")
    syl = read_netcdf(world / "demo02_syllables.nc")  # a training session: in distribution
    syl.coords["has_audio"] = ("syllable", np.ones(syl.sizes["syllable"], np.int8))
    settings = ApplySettings(n_samples=2)
    normal = apply_to_data(model, syl, ref, params, settings)
    odd = syl.copy()
    spec = odd["spectrogram"]
    noise = np.random.default_rng(0).uniform(0, 0.6, spec.shape)  # a loud broadband background
    odd["spectrogram"] = (spec.dims, np.clip(spec.values + noise, 0, 1).astype(np.float32))
    noisy = apply_to_data(model, odd, ref, params, settings)
    assert normal.attrs["session_flagged"] == 0 and normal["ood_flag"].values.mean() < 0.05
    assert noisy.attrs["session_flagged"] == 1 and noisy["ood_flag"].values.mean() > 0.5
    recon = {r["score"]: r for r in noisy.attrs["ood_summary"]}["recon_audio"]
    assert recon["ks_pvalue"] < 1e-6 and recon["median_percentile"] == 100


def test_percentile_and_kl_closed_forms():
    from mmneuro.apply.ood import percentile_of, session_summary

    np.testing.assert_allclose(percentile_of(np.array([0.5, 3.0, 10.0]), np.arange(4.0)), [25.0, 100.0, 100.0])
    rng = np.random.default_rng(0)
    reference = {"kl": rng.normal(size=2000)}
    _, flags, rows = session_summary({"kl": rng.normal(size=500)}, reference, 99.0, 0.1)
    assert rows[0]["fraction_flagged"] < 0.03 and not rows[0]["session_flagged"]
    _, flags, rows = session_summary({"kl": rng.normal(3.0, 1.0, size=500)}, reference, 99.0, 0.1)
    assert rows[0]["fraction_flagged"] > 0.4 and rows[0]["session_flagged"] and flags.mean() > 0.4


def test_param_differences_are_reported():
    from mmneuro.apply.sessions import param_differences

    stored = {"audio": {"n_freq": 64, "hop_s": 0.002}, "neural": {"bin_s": 0.01, "labels": ["good"]}}
    current = {"audio": {"n_freq": 128, "hop_s": 0.002}, "neural": {"bin_s": 0.01, "labels": ("good",)}}
    assert param_differences(stored, current) == ["audio.n_freq: model 64, now 128"]
    # threads and chunk sizes change no result: a model recorded before `workers` existed, or run with
    # other threads, differs in nothing
    assert param_differences(stored, {**current, "audio": {**current["audio"], "workers": 2, "chunk_s": 4.0}}) == [
        "audio.n_freq: model 64, now 128"]


def test_cli_applies_and_rejects_bad_arguments(world, tmp_path, capsys):
    from mmneuro.cli import main

    wav = world / "demo" / "demo03" / "audio.wav"
    model = world / "results" / "models" / "mopoe"
    assert main(["apply", str(model), f"new={wav}", "--out", str(tmp_path / "o"), "--n-samples", "3", "--quiet"]) == 0
    assert "new: " in capsys.readouterr().out and (tmp_path / "o" / "new" / "report.html").is_file()
    assert main(["apply", str(model), str(wav), "--out", str(tmp_path / "p"), "--syllables", "nope"]) == 2
    assert "--syllables" in capsys.readouterr().err
    assert main(["apply", str(tmp_path), str(wav), "--out", str(tmp_path / "p")]) == 2
    assert "config.json" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_cli_session_with_its_own_units(world, tmp_path, capsys):
    """A session sorted on its own (`units: own`, unit ids renumbered): accepted, its read-in and
    read-out fitted, outputs under its own ids, its units matched to the model's; the same session
    without `units: own` is a clear error naming its units' folder (exit 2), nothing written. (The
    demo sessions' units under one id are different neurons, so the matching's quality is tested on
    planted multi-day data: tests/test_apply_units.py.)"""
    import pandas as pd

    from mmneuro.cli import main

    session = _complete(world)
    phy = tmp_path / "phy"
    shutil.copytree(session.neural, phy)
    np.save(phy / "spike_clusters.npy", np.load(phy / "spike_clusters.npy") + 100)
    groups = pd.read_csv(phy / "cluster_group.tsv", sep="\t")
    groups.assign(cluster_id=groups["cluster_id"] + 100).to_csv(phy / "cluster_group.tsv", sep="\t", index=False)
    row = {"session": "own3", "audio": session.audio, "neural": phy, "neural_format": "phy",
           "sync_audio": session.sync_audio, "sync_neural": session.sync_neural}
    model = world / "results" / "models" / "mopoe"
    runs = {}
    for units in ("", "own"):
        table = tmp_path / f"sessions_{units or 'shared'}.tsv"
        pd.DataFrame([{**row, "units": units}]).to_csv(table, sep="\t", index=False)
        out = tmp_path / f"out_{units or 'shared'}"
        code = main(["apply", str(model), "--sessions", str(table), "--out", str(out), "--n-samples", "3", "--quiet",
                     "--set", "readin_epochs=8"])
        runs[units] = (code, capsys.readouterr(), out)
    code, captured, out = runs[""]
    assert code == 2 and str(phy) in captured.err and "units: own" in captured.err and not out.exists()
    code, captured, out = runs["own"]
    assert code == 0 and "own units:" in captured.out
    applied = read_netcdf(out / "own3" / "applied.nc")
    ids = groups.loc[groups["group"] == "good", "cluster_id"].to_numpy() + 100
    np.testing.assert_array_equal(np.sort(applied["unit"].values), np.sort(ids))
    assert applied["predicted_counts"].sizes["unit"] == len(ids) and "pearson_r" in applied
    assert list(applied["score"].values) == ["recon_audio", "kl"]  # the reference has no data of these units
    matching = pd.read_csv(out / "own3" / "unit_matching.csv")
    assert set(matching["session_b"]) == {"own3"} and set(matching["unit_b"]) <= set(ids.tolist())
    assert set(matching["session_a"]) == {"shared"} and set(matching["unit_a"]) <= set(range(100))
    assert {"self_score", "confident"} <= set(matching.columns)
    assert "Units matched to the training sessions' units" in (out / "own3" / "report.html").read_text()

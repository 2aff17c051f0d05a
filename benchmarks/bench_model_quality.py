"""Model quality on planted data: train MVAE / MMVAE / MoPoE with the workflow's settings on small
datasets built from several SynthConfigs, and print issue 14's targets per model and data family.

For each family the demo generator writes the sessions, the workflow builds dataset.nc (cached in
``--work``), then each model is trained (config/config.yaml's ``train`` + ``model_overrides``, plus
``--set``) and scored on the held-out syllables with the analysis stage's own functions:

- ``a2n``: audio → neural mean per-unit Pearson r (all good units), with ridge and the oracle;
- ``n2a`` / ``a2a``: mean per-syllable r of the spectrogram generated from neurons / from sound,
  with the mean-spectrogram baseline (``mean_img``), ridge from the neurons' counts (``n2a_ridge``)
  and the planted-feature oracle (``n2a_oracle``, E[image | the features units are tuned to]; what
  is achievable: benchmarks/bench_n2a_ceiling.py, docs/analysis.md);
- ``kl_audio`` / ``kl_neural``: mean KL(q(z | x_m) ‖ N(0, I)) of each unimodal posterior (nats);
  ``info_*``: the same against the moment-matched aggregate posterior (a bound on I(x_m; z) that
  does not count a constant offset from the prior; MultimodalVAE.unimodal_information);
- ``syn``: synergy ordered (joint ≥ self > cross) for the audio / neural target;
- ``ll_*``: held-out log p(x_m | x_m) (nats per syllable, unweighted likelihoods);
- ``a2a_df_khz`` / ``a2a_level`` (and ``n2a_*``): what decoded images look like: median error of the
  dominant frequency in the contour's columns (kHz; one image row is ~1.3 kHz on the demo) and the
  decoded contour level as a fraction of the true one;
- ``a2a_ref`` / ``n2a_ref``: the same per-syllable r against a fixed reference, the images made
  before 2026-12-02 (``REFERENCE_AUDIO``): the decoded image is put back on the reference's dB scale
  (dB = spec_lo_db + (spec_hi_db − spec_lo_db) × pixel, then the reference's clip), so that a change
  of representation cannot score better merely by making its own target easier;
- ``train_s``: wall time of ``fit``.

Then the median and the worst case over families × seeds per model. Example (what docs/models.md
quotes)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_model_quality.py \\
        --families demo,narrow_bands,few_units,busy_baseline --seeds 0,1,2 --work /tmp/bench_quality

``--audio spec_lo_db=6`` builds the datasets with other spectrogram settings (own results folder).
``--duration-s 360`` builds a family with longer sessions (more data, same planted configuration;
own folder ``<family>_360s``), ``--train-syllables 290`` trains on fewer of a family's training
syllables and scores the same test ones, ``--models vae`` trains the audio-only VAE (``a2a`` and the
audio posterior only): docs/models.md, "A floor on optimiser steps, and what data size does".
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# families of planted data that differ from the demo in band centres/widths, unit counts, baselines
# and syllable rate (each: SynthConfig changes, sessions, seconds per session)
FAMILIES = {
    "demo": ({}, 3, 180.0),
    "narrow_bands": ({"band_centers_hz": (40_000.0, 55_000.0, 70_000.0, 95_000.0), "band_width_hz": 3_000.0}, 2, 120.0),
    "few_units": ({"units_per_cluster": 3, "n_untuned": 3, "gain_hz": (20.0, 50.0)}, 2, 120.0),
    "busy_baseline": ({"baseline_hz": (8.0, 20.0), "syllable_gap_s": (0.03, 0.15), "bout_gap_s": (0.5, 2.0),
                       "band_centers_hz": (50_000.0, 70_000.0, 90_000.0), "band_width_hz": 7_000.0}, 2, 120.0),
}


# the images before 2026-12-02 (docs/models.md "Spectrogram representation"): the fixed reference of *_ref
REFERENCE_AUDIO = ["image_rows=interp", "spec_lo_db=0", "spec_hi_db=40"]


def family_folder(name: str, work: Path, duration_s: float | None = None) -> Path:
    """work/name, or work/name_<duration>s for sessions of another length than the family's."""
    return work / (name if duration_s is None else f"{name}_{duration_s:g}s")


def build_dataset(name: str, work: Path, audio_set: list[str] = (), duration_s: float | None = None) -> Path:
    """Sessions + dataset.nc for one family under work/name (reused when present). ``audio_set``:
    ``KEY=VALUE`` overrides of config.yaml's ``audio.set`` (each set of overrides gets its own
    results folder; the sessions are shared). ``duration_s``: seconds per session instead of the
    family's (more syllables of the same planted configuration; own folder, family_folder)."""
    import yaml

    from mmneuro.synth import SynthConfig, generate_demo

    changes, n_sessions, family_s = FAMILIES[name]
    duration_s = family_s if duration_s is None else duration_s
    folder = family_folder(name, work, None if duration_s == family_s else duration_s)
    results = folder / ("results" + "".join(f"_{s.replace('=', '-')}" for s in audio_set))
    dataset = results / "dataset.nc"
    if dataset.is_file():
        return dataset
    table = folder / "data" / "sessions.tsv"
    if not table.is_file():
        table = generate_demo(folder / "data", n_sessions=n_sessions, duration_s=duration_s, seed=0,
                              config=replace(SynthConfig(), **changes))
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config |= {"sessions": str(table), "results": str(results)}
    for item in audio_set:
        key, value = item.split("=", 1)
        config["audio"].setdefault("set", {})[key] = yaml.safe_load(value)
    config_file = results.with_suffix(".yaml")
    config_file.write_text(yaml.safe_dump(config))
    subprocess.run([sys.executable, "-m", "snakemake", str(dataset), "--snakefile", str(ROOT / "Snakefile"),
                    "--cores", "1", "--configfile", str(config_file), "-q"], check=True,
                   cwd=folder, stdout=subprocess.DEVNULL)
    return dataset


def train_config(kind: str, seed: int, overrides: list[str]) -> dict:
    """The workflow's training settings for ``kind`` (config/config.yaml), seed and ``--set`` overrides."""
    import yaml

    from mmneuro.cli.train import apply_overrides

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return apply_overrides({**(config.get("train") or {}), **(config.get("model_overrides") or {}).get(kind, {}),
                            "kind": kind, "seed": seed}, overrides)


def image_looks(truth: np.ndarray, decoded: np.ndarray, freq_khz: np.ndarray, level: float = 0.3) -> dict:
    """What decoded images (N, F, T) look like against the true ones, over the columns where the
    true image has a contour (a pixel ≥ ``level``): the median |error| of the dominant frequency
    (argmax row, kHz) and the decoded / true contour level (mean column maximum)."""
    errors, levels = [], []
    for t, p in zip(truth, decoded):
        cols = t.max(0) >= level
        if cols.sum() < 3:
            continue
        errors.append(np.median(np.abs(freq_khz[t[:, cols].argmax(0)] - freq_khz[p[:, cols].argmax(0)])))
        levels.append(p[:, cols].max(0).mean() / t[:, cols].max(0).mean())
    return {"df_khz": float(np.median(errors)), "level": float(np.median(levels))}


def on_reference_scale(images: np.ndarray, params: dict, reference_params: dict) -> np.ndarray:
    """[0, 1] images of one dataset's dB scale (params' spec_lo/hi_db) on another's."""
    db = params["spec_lo_db"] + (params["spec_hi_db"] - params["spec_lo_db"]) * images
    lo, hi = reference_params["spec_lo_db"], reference_params["spec_hi_db"]
    return np.clip((db - lo) / (hi - lo), 0.0, 1.0)


def reference_scores(ds, images: dict, reference: Path) -> dict:
    """``*_ref``: mean per-syllable r of decoded images (N, F, T) of ``ds``'s syllables against the
    ``reference`` dataset's images of the same syllables, on the reference's dB scale."""
    from mmneuro.analysis.neurons import pearson_columns
    from mmneuro.io import read_netcdf

    ref = read_netcdf(reference)
    truth = ref["spectrogram"].sel(syllable=ds["syllable"].values).transpose("syllable", "freq", "time").values
    params, ref_params = json.loads(ds.attrs["audio_params"]), json.loads(ref.attrs["audio_params"])
    flat = truth.reshape(len(truth), -1)
    return {f"{key}_ref": float(np.nanmean(pearson_columns(
        flat.T, on_reference_scale(decoded.reshape(flat.shape), params, ref_params).T)))
        for key, decoded in images.items()}


def fewer_training_syllables(ds, n_train: int, seed: int = 0):
    """``ds`` with only ``n_train`` of its training syllables (drawn with ``seed``) and the validation
    ones cut by the same fraction; the others get split "unused", the test syllables stay as they are
    (less data of one family, scored on the same held-out syllables)."""
    split = ds["split"].values.astype(str).astype(object)
    rng = np.random.default_rng(seed)
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    keep_val = int(round(len(val) * n_train / len(train)))
    split[rng.choice(train, len(train) - n_train, replace=False)] = "unused"
    split[rng.choice(val, len(val) - keep_val, replace=False)] = "unused"
    return ds.assign_coords(split=("syllable", split.astype(str)))


def evaluate(model, ds, truth_dirs: list[Path], reference: Path | None = None) -> dict:
    """The scores of one trained model on ``ds``'s held-out syllables, from the analysis stage itself
    (``mmneuro.analyse`` with the planted truth of ``truth_dirs``: cross-prediction with its oracles,
    synergy); an audio-only model gets :func:`audio_only_scores`."""
    import torch

    from mmneuro.analysis import analyse
    from mmneuro.analysis.pipeline import analysis_data
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.synth.scoring import load_truths

    settings = AnalysisSettings()
    if "neural" not in model.modalities:
        return audio_only_scores(model, analysis_data(ds, model, settings, "dataset.nc"), settings)
    result = analyse(model, ds, settings=settings, truth=load_truths(truth_dirs), progress=False)
    data, decoded = result.context.data, result.context.cross["images"]
    r = result.crosspred.groupby(["direction", "method"])["pearson_r"].mean()
    syn = result.synergy.set_index("target")
    images = data.ds["spectrogram"].transpose("syllable", "freq", "time").values
    looks = {f"{key}_{k}": v for key, method in (("a2a", "model (audio->audio)"), ("n2a", "model (neural->audio)"))
             for k, v in image_looks(images, decoded[method].reshape(images.shape),
                                     data.ds["freq_hz"].values / 1e3).items()}
    if reference is not None:
        looks |= reference_scores(data.ds.assign_attrs(audio_params=ds.attrs["audio_params"]),
                                  {"a2a": decoded["model (audio->audio)"], "n2a": decoded["model (neural->audio)"]},
                                  reference)
    kl = model.unimodal_information({m: torch.from_numpy(v) for m, v in data.x.items()})
    return {"a2n": r["audio->neural", "model (audio->neural)"], "ridge": r["audio->neural", "ridge (spectrogram PCA)"],
            "oracle": r["audio->neural", "oracle (planted rate)"], "n2a": r["neural->audio", "model (neural->audio)"],
            "mean_img": r["neural->audio", "mean spectrogram"], "n2a_ridge": r["neural->audio", "ridge (neural counts)"],
            "n2a_oracle": r["neural->audio", "oracle (planted features)"], "a2a": r["neural->audio", "model (audio->audio)"],
            "kl_audio": kl["kl_unimodal_audio"], "kl_neural": kl["kl_unimodal_neural"],
            "info_audio": kl["info_unimodal_audio"], "info_neural": kl["info_unimodal_neural"],
            "syn": "/".join("y" if syn.loc[m, "ordered"] else "n" for m in ("audio", "neural")),
            "ll_audio": syn.loc["audio", "log_p_self"], "ll_neural": syn.loc["neural", "log_p_self"], **looks}


def audio_only_scores(model, data, settings) -> dict:
    """An audio-only model (``vae``, or ``--set 'modalities=[audio]'``): what the audio side alone
    reaches at the same budget, ``a2a`` and the audio posterior's nats, scored like the others
    (``data``: pipeline.analysis_data)."""
    import torch

    from mmneuro.analysis import embed
    from mmneuro.analysis.neurons import pearson_columns

    images = data.ds["spectrogram"].transpose("syllable", "freq", "time").values
    decoded = embed.cross_generate(model, data.x, "audio", "audio", settings.batch_size,
                                   samples=settings.predictive_samples, seed=settings.seed)
    flat = images.reshape(len(images), -1)
    kl = model.unimodal_information({"audio": torch.from_numpy(data.x["audio"])})
    return {"a2a": float(np.nanmean(pearson_columns(flat.T, decoded.reshape(flat.shape).T))),
            "kl_audio": kl["kl_unimodal_audio"], "info_audio": kl["info_unimodal_audio"]}


def targets(row: pd.Series) -> str:
    """Which of issue 14's targets a run misses (empty: all met)."""
    if "a2n" not in row:  # audio-only model
        return "a2a" if row.a2a < 0.75 else "-"
    missed = []
    if row.a2n < 0.8 * row.oracle or row.a2n < row.ridge + 0.05:
        missed.append("a2n")
    if row.n2a < 3 * row.mean_img:
        missed.append("n2a")
    if row.a2a < 0.75:
        missed.append("a2a")
    if min(row.kl_audio, row.kl_neural) < 5:
        missed.append("kl")
    if row.syn != "y/y":
        missed.append("syn")
    return ",".join(missed) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="demo,narrow_bands,few_units,busy_baseline")
    ap.add_argument("--models", default="mvae,mmvae,mopoe")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    ap.add_argument("--audio", action="append", default=[], metavar="KEY=VALUE",
                    help="override of config.yaml's audio.set for the datasets (e.g. spec_lo_db=6)")
    ap.add_argument("--duration-s", type=float, help="seconds per session instead of each family's "
                    "(a larger dataset of the same planted configuration, built once in --work/<family>_<s>s)")
    ap.add_argument("--train-syllables", type=int, help="train on only this many of each dataset's "
                    "training syllables (validation cut alike), scored on the same test syllables")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_model_quality"))
    ap.add_argument("--csv", type=Path, help="also write the per-run table here")
    args = ap.parse_args()
    from rounds import machine

    print(machine())  # quality, not timing: seeds and families are its repeats

    import torch

    from mmneuro.io import read_netcdf
    from mmneuro.train import fit

    torch.set_num_threads(1)
    rows = []
    for family in args.families.split(","):
        dataset = build_dataset(family, args.work, args.audio, args.duration_s)
        # the reference images at the datasets' image size (``--audio n_freq=128``: 128-row references)
        size = [item for item in args.audio if item.split("=", 1)[0] in ("n_freq", "n_time")]
        reference = build_dataset(family, args.work, REFERENCE_AUDIO + size, args.duration_s)
        folder = dataset.parent.parent
        ds = read_netcdf(dataset)
        name = folder.name
        if args.train_syllables:
            ds, name = fewer_training_syllables(ds, args.train_syllables), f"{name}_{args.train_syllables}train"
        truth_dirs = sorted(p.parent for p in (folder / "data").glob("*/ground_truth.json"))
        for kind in args.models.split(","):
            for seed in map(int, args.seeds.split(",")):
                tag = "_".join([name, kind, str(seed)] + [s.replace("=", "-") for s in args.audio + args.set])
                out = args.work / "models" / tag
                shutil.rmtree(out, ignore_errors=True)  # always train the current code, never resume an old run
                t0 = time.perf_counter()
                model = fit(ds, train_config(kind, seed, args.set), out, progress=False)
                row = {"family": name, "model": kind, "seed": seed, "train_s": time.perf_counter() - t0,
                       **evaluate(model, ds, truth_dirs, reference)}
                if "a2n" in row:
                    row["a2n_over_oracle"] = row["a2n"] / row["oracle"]
                row["missed"] = targets(pd.Series(row))
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))
    numeric = table.drop(columns=["family", "seed", "syn", "missed"], errors="ignore")
    if table["seed"].nunique() > 1:
        over_seeds = table.drop(columns=["seed", "syn", "missed"], errors="ignore").groupby(["family", "model"])
        spread = over_seeds.mean().round(3).astype(str) + " ± " + over_seeds.std().round(3).astype(str)
        print("\nmean ± SD over seeds\n" + spread.to_string())
    print("\nmedian per model\n" + numeric.groupby("model").median().round(3).to_string())
    worst = numeric.groupby("model").min()
    larger_is_worse = [c for c in numeric if c == "train_s" or c.endswith("df_khz")]
    worst[larger_is_worse] = numeric.groupby("model")[larger_is_worse].max()
    print("\nworst case per model (min; train_s, *_df_khz: max)\n" + worst.round(3).to_string())


if __name__ == "__main__":
    main()

"""How well can anything predict a syllable's spectrogram from the neurons? Baselines without a VAE.

On each planted family's dataset.nc (built by bench_model_quality.py, default settings) the
predictors below are fitted on the training split and scored on the held-out (test) syllables with
the analysis stage's neural -> audio score, the mean per-syllable Pearson r of predicted vs actual
image (crosspred.image_error_rows), and as a ratio to the mean-spectrogram baseline (issue 14's
target: n2a >= 3x mean image):

- ``mean_img``, ``ridge``, ``oracle``: what the analysis reports (pipeline.image_baselines): the
  training images' mean; ridge from sqrt total counts per unit to 20 principal components of the
  training images; extremely randomised trees on the exact planted features some unit is tuned to
  (mean frequency, duration, FM slope), E[image | what the neurons encode]. Under the generator the
  spikes depend on the syllable only through these (and the slow drift), so no neural predictor
  beats E[image | them] in squared error; the per-syllable r is not the squared error, and the
  trees learn from the same training images, so read it as a ceiling estimate, not a bound;
- ``ridge_binned``: ridge from sqrt binned counts (unit x bin, the models' input), alphas to 1e5;
- ``trees``: the trees on sqrt total counts (a nonlinear neural decoder);
- ``ridge_rates`` / ``trees_rates``: the same from the noise-free planted expected counts
  (mmneuro.synth.scoring.oracle_counts: the neurons without Poisson noise);
- ``oracle_all``: the trees on every planted parameter that shapes the image (start/end frequency,
  duration, jump position, harmonic, log amplitude), limited by the training set's size (the
  noise-free re-rendered ceiling is bench_spectrogram_ceiling.py's, 0.98);
- ``pca_self``: the true image projected on the training images' 20 principal components (the
  least squared error, so roughly the most r, of any predictor confined to them, such as ``ridge``).

Oracles cover the syllables matched to a planted one (n_oracle of n). With ``--models DIR`` (trained
models in DIR/<family>_<kind>_<seed>, e.g. bench_model_quality.py's ``--work``/models) it instead
scores each model's n2a, a2a and audio -> neural mean per-unit r (``a2n``, summed counts), decoded
at the posterior mean (``*_S0``) and as the predictive mean over 32 posterior draws (``*_S32``, the
analysis default ``predictive_samples``). Examples (docs/analysis.md)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_n2a_ceiling.py --work /work/bq2
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_n2a_ceiling.py --work /work/bq2 \
        --models /work/bq2/models
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

FAMILIES = ("demo", "narrow_bands", "few_units", "busy_baseline")
ALL_PARAMS = ["start_freq_hz", "end_freq_hz", "duration_s", "jump_fraction", "harmonic", "amplitude"]


def family_rows(folder: Path) -> dict:
    from sklearn.decomposition import PCA

    from mmneuro.analysis import crosspred, pipeline
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.inputs import latency_s, window_counts
    from mmneuro.io import read_netcdf
    from mmneuro.synth import scoring

    s = AnalysisSettings()
    ds = read_netcdf(folder / "results" / "dataset.nc")
    split = dict(zip(("test", "train"), pipeline.splits(ds, s, str(folder))))
    truths = scoring.load_truths(sorted(p.parent for p in (folder / "data").glob("*/ground_truth.json")))
    units = scoring.truth_units(truths, ds["unit"].values)
    tail = float(next(iter(truths.values())).get("response_tail_s", 0.0))

    def per_split(fn):
        return {k: fn(d) for k, d in split.items()}

    img = per_split(lambda d: d["spectrogram"].transpose("syllable", "freq", "time").values)
    planted = per_split(lambda d: scoring.planted_syllables(d["session"].values, d["onset_s"].values, truths,
                                                            s.match_tolerance_s))
    total = per_split(lambda d: np.sqrt(d["total_counts"].transpose("syllable", "unit").values.astype(float)))
    binned = per_split(lambda d: d["counts"].transpose("syllable", "unit", "bin").values.astype(float))
    # noise-free expected counts in the total-count window (onset -> offset + latency, inputs.window_counts)
    rates = {k: np.sqrt(scoring.oracle_counts(units, planted[k], d["onset_s"].values,
                                              window_counts(d, "total_counts", latency_s(ds))[2], tail))
             for k, d in split.items()}
    params = {k: scoring.syllable_feature_matrix(v, ALL_PARAMS) for k, v in planted.items()}
    for m in params.values():
        m[:, ALL_PARAMS.index("amplitude")] = np.log(m[:, ALL_PARAMS.index("amplitude")])

    def ridge(x, alphas=s.ridge_alphas):
        ok, rows = np.isfinite(x["train"]).all(1), np.isfinite(x["test"]).all(1)
        out = np.full(img["test"].shape, np.nan)
        out[rows] = crosspred.ridge_fit_predict(x["train"][ok], img["train"][ok], x["test"][rows], alphas=alphas,
                                                y_components=s.pca_components, seed=s.seed)
        return out

    def trees(x):
        return crosspred.tree_images(x["train"], img["train"], x["test"], seed=s.seed)

    flat = {k: v.reshape(len(v), -1) for k, v in img.items()}
    pca = PCA(s.pca_components, random_state=s.seed).fit(flat["train"])
    base = pipeline.image_baselines(split["test"], split["train"], s, truths)
    preds = {"mean_img": base["mean spectrogram"], "ridge": base["ridge (neural counts)"],
             "ridge_binned": ridge({k: np.sqrt(v).reshape(len(v), -1) for k, v in binned.items()},
                                   s.ridge_alphas + (1e4, 1e5)),
             "trees": trees(total), "ridge_rates": ridge(rates), "trees_rates": trees(rates),
             "oracle": base["oracle (planted features)"], "oracle_all": trees(params),
             "pca_self": pca.inverse_transform(pca.transform(flat["test"]))}
    table = crosspred.image_error_rows(img["test"], preds).set_index("method")
    return {"n": len(img["test"]), "n_oracle": int(table.loc["oracle", "n_syllables"]),
            "tuned": "+".join(scoring.tuning_features(next(iter(truths.values()))))} | table["pearson_r"].to_dict()


def model_rows(models: Path, work: Path, samples: int = 32) -> pd.DataFrame:
    """n2a / a2a of every trained model in ``models`` at the posterior mean and the predictive mean."""
    import torch

    from mmneuro.analysis import crosspred, embed, pipeline
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.io import read_netcdf
    from mmneuro.models import load_model

    torch.set_num_threads(1)
    s, rows = AnalysisSettings(), []
    for folder in sorted(p for p in models.iterdir() if (p / "config.json").is_file()):
        family, kind, seed = folder.name.rsplit("_", 2)
        model = load_model(folder)
        data = pipeline.analysis_data(read_netcdf(work / family / "results" / "dataset.nc"), model, s, str(folder))
        images = data.ds["spectrogram"].transpose("syllable", "freq", "time").values
        row = {"family": family, "model": kind, "seed": int(seed)}
        for src, key in (("neural", "n2a"), ("audio", "a2a")):
            for k in (0, samples):
                pred = embed.cross_generate(model, data.x, src, "audio", s.batch_size, samples=k, seed=s.seed)
                row[f"{key}_S{k}"] = float(np.nanmean(crosspred.syllable_r(images, pred)))
        for k in (0, samples):
            pred = embed.cross_generate(model, data.x, "audio", "neural", s.batch_size, samples=k, seed=s.seed)
            scores = crosspred.score_table(data.counts, {"model": pred.reshape(len(pred), pred.shape[1], -1).sum(-1)},
                                           data.ds["unit"].values)
            row[f"a2n_S{k}"] = float(scores["pearson_r"].mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    for key in ("n2a", "a2a", "a2n"):
        table[f"{key}_gain"] = table[f"{key}_S{samples}"] - table[f"{key}_S0"]
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_model_quality"),
                    help="bench_model_quality.py's --work (holds <family>/results/dataset.nc and data/)")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--models", type=Path, help="score the trained models in this folder instead (see above)")
    args = ap.parse_args()
    from rounds import machine

    print(machine())  # quality, not timing: seeds and families are its repeats
    pd.set_option("display.width", 200)
    if args.models:
        table = model_rows(args.models, args.work)
        numeric = table.drop(columns=["family", "seed"])
        print(table.round(3).to_string(index=False))
        print("\nmedian per model\n" + numeric.groupby("model").median().round(3).to_string())
        print("\nall runs: median, min, max\n" + numeric.drop(columns="model").agg(["median", "min", "max"]).round(3).to_string())
        return
    rows = [{"family": f, **family_rows(args.work / f)} for f in args.families.split(",")]
    table = pd.DataFrame(rows).set_index("family")
    scores = table.drop(columns=["n", "n_oracle", "tuned"])
    print("mean per-syllable r, held-out syllables\n" + table.round(3).to_string())
    print("\nratio to mean_img (issue 14's target: 3)\n" + scores.div(scores["mean_img"], axis=0).round(2).to_string())


if __name__ == "__main__":
    main()

"""Why do the models' neural -> audio spectrograms fall below ridge? Decompose neural -> z -> image.

For every trained model in ``--models`` (folders <family>_<kind>_<seed>, as bench_model_quality.py
writes them) on its family's dataset.nc under ``--work``, scored like the analysis (mean per-syllable
Pearson r of predicted vs actual spectrogram, held-out test syllables; fits on the training split):

- ``n2a``: the model's neural -> audio, predictive mean over 32 draws of q(z | neural) (the analysis);
  ``n2a_S0``: decoded at the posterior mean;
- ``ridge``: ridge from sqrt total counts to 20 image PCs (the analysis' ``ridge (neural counts)``);
- ``a2a``: the audio decoder at the audio posterior mean (the upper end of any z -> image path);
- ``zr_cnt`` / ``zr_bin``: the audio decoder at the ridge prediction of the audio posterior mean
  m_a = E q(z | audio) from sqrt total / binned counts (fitted on training syllables); ``zr_nmu``:
  at a ridge map from the neural posterior mean to m_a (what a linear read-out of the neural
  encoder's output could give); ``zr_cnt_pm``: predictive mean over 32 draws of N(ridge, residual
  covariance of the ridge on training syllables);
- ``R2_nmu`` / ``R2_cnt``: test R^2 of m_a (summed over latent dims) from the neural posterior
  mean itself (no fit) / from the ridge on total counts; ``R2_nmu_train``, ``n2a_S0_train``: the
  same on the training syllables (a gap to the test values: the neural encoder overfits);
- ``kl_n``: mean KL(q(z | neural) || N(0, I)) on the test split; ``sd_ratio``: median over latent
  dims of the neural posterior's SD / the residual SD of m_a given the neural posterior mean (1:
  calibrated; < 1: over-confident, so the predictive mean blurs too little).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/probe_n2a_gap.py --models /work/bq4/models \\
        --work /work/bq2 [--only demo_mvae_0,few_units_mopoe_1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ("mvae", "mmvae", "mopoe")


def ridge_map(x_train, y_train, x, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0, 1e4)):
    from mmneuro.analysis import crosspred

    return crosspred.ridge_fit_predict(x_train, y_train, x, alphas=alphas)


def r2(y, pred):
    return float(1.0 - ((y - pred) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())


def model_row(folder: Path, work: Path, samples: int = 32) -> dict:
    from mmneuro.analysis import crosspred, embed, pipeline
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.io import read_netcdf
    from mmneuro.models import load_model

    s = AnalysisSettings()
    # bench_model_quality.py's folder names: <family>_<kind>_<seed>[_<--set overrides>]
    family, kind, seed = next((name[0], kind, name[1].split("_")[0]) for kind in KINDS
                              if len(name := folder.name.split(f"_{kind}_", 1)) == 2)
    model = load_model(folder).eval()
    data = pipeline.analysis_data(read_netcdf(work / family / "results" / "dataset.nc"), model, s, str(folder))
    img = {"test": data.ds["spectrogram"].transpose("syllable", "freq", "time").values,
           "train": data.train["spectrogram"].transpose("syllable", "freq", "time").values}
    x = {"test": data.x, "train": data.x_train}
    score = lambda pred: float(np.nanmean(crosspred.syllable_r(img["test"], pred)))  # noqa: E731
    decode = embed.decoder_mean(model, "audio", s.batch_size)

    mom = {k: {m: embed.posterior_moments(model, v, (m,), s.batch_size) for m in ("audio", "neural")}
           for k, v in x.items()}
    m_a = {k: mom[k]["audio"][0] for k in x}
    m_n = {k: mom[k]["neural"][0] for k in x}
    v_n = mom["test"]["neural"][1]
    cnt = {k: np.sqrt(d["total_counts"].transpose("syllable", "unit").values.astype(float))
           for k, d in (("test", data.ds), ("train", data.train))}
    binned = {k: np.sqrt(v["neural"].reshape(len(v["neural"]), -1).astype(float)) for k, v in x.items()}

    row = {"family": family, "model": kind, "seed": int(seed), "run": folder.name}
    row["n2a"] = score(embed.cross_generate(model, x["test"], "neural", "audio", s.batch_size, samples=samples,
                                            seed=s.seed))
    row["n2a_S0"] = score(decode(m_n["test"]))
    row["ridge"] = score(pipeline.image_baselines(data.ds, data.train, s, {})["ridge (neural counts)"])
    row["a2a"] = score(decode(m_a["test"]))
    z_cnt = ridge_map(cnt["train"], m_a["train"], cnt["test"])
    row["zr_cnt"] = score(decode(z_cnt))
    row["zr_bin"] = score(decode(ridge_map(binned["train"], m_a["train"], binned["test"])))
    row["zr_nmu"] = score(decode(ridge_map(m_n["train"], m_a["train"], m_n["test"])))
    # predictive mean around the ridge prediction, with the ridge's training residual covariance
    resid = m_a["train"] - ridge_map(cnt["train"], m_a["train"], cnt["train"])
    chol = np.linalg.cholesky(np.cov(resid.T) + 1e-6 * np.eye(resid.shape[1]))
    rng = np.random.default_rng(s.seed)
    draws = z_cnt[None] + rng.standard_normal((samples, *z_cnt.shape)) @ chol.T
    row["zr_cnt_pm"] = score(decode(draws.reshape(-1, z_cnt.shape[1])).reshape(samples, *img["test"].shape).mean(0))
    for k, suffix in (("test", ""), ("train", "_train")):
        w = m_a[k].var(0)
        row["R2_nmu" + suffix] = float((w - ((m_a[k] - m_n[k]) ** 2).mean(0)).sum() / w.sum())
    row["n2a_S0_train"] = float(np.nanmean(crosspred.syllable_r(img["train"], decode(m_n["train"]))))
    row["R2_cnt"] = r2(m_a["test"], z_cnt)
    row["kl_n"] = float(0.5 * (v_n + m_n["test"] ** 2 - 1 - np.log(v_n)).sum(1).mean())
    resid_sd = (m_a["test"] - m_n["test"]).std(0)
    row["sd_ratio"] = float(np.median(np.sqrt(v_n).mean(0) / resid_sd))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="holds <family>/results/dataset.nc")
    ap.add_argument("--only", default="", help="comma-separated model folder names")
    ap.add_argument("--out", type=Path, help="write the table as CSV here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    only = set(filter(None, args.only.split(",")))
    folders = sorted(p for p in args.models.iterdir() if (p / "config.json").is_file() and (not only or p.name in only))
    rows = []
    for folder in folders:
        rows.append(model_row(folder, args.work))
        print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    pd.set_option("display.width", 250)
    numeric = table.drop(columns=["family", "seed", "run"])
    print("\nmedian per model\n" + numeric.groupby("model").median().round(3).to_string())
    ratio = numeric.drop(columns=["model"]).filter(regex="^(n2a|zr|a2a)").div(table["ridge"], axis=0)
    print("\nratio to ridge, median per model\n" + ratio.assign(model=table["model"]).groupby("model").median()
          .round(2).to_string())


if __name__ == "__main__":
    main()

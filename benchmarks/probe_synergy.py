"""Which inequality of the synergy ordering (joint ≥ self > cross) fails, per trained model.

For models trained by ``benchmarks/bench_model_quality.py`` (folders ``<family>_<kind>_<seed>``
under ``--models``, datasets under ``--work``), computes on the analysis stage's syllables and
settings (``mmneuro.analysis.synergy``, K = 50, 500 held-out syllables) the per-syllable
log p(x_t | joint), log p(x_t | self), log p(x_t | cross) for the target ``--target`` and prints
the paired mean differences with their standard errors, the ordering verdict of ``synergy_table``
and which inequality fails. For the mixture posteriors (MMVAE, MoPoE) it also prints
log-mean-exp over components of log p(x_t | component c) ("mix_bound"): the joint estimate of a
uniform mixture q_joint = (1/C) Σ_c q_c is at most log p(x_t | self) + log(1/C) + ... whenever
the self component dominates.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/probe_synergy.py --models /work/bq2/models \\
        --work /work/bq2 [--target neural]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmneuro.analysis import pipeline
from mmneuro.analysis.settings import AnalysisSettings
from mmneuro.analysis.synergy import conditional_log_likelihood
from mmneuro.io import read_netcdf
from mmneuro.models import load_model

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--models", type=Path, required=True)
ap.add_argument("--work", type=Path, required=True)
ap.add_argument("--target", default="neural")
ap.add_argument("--only", default="", help="comma-separated substrings of the model folders to keep")
ap.add_argument("--csv", type=Path)
args = ap.parse_args()
torch.set_num_threads(1)
settings = AnalysisSettings()
rows = []
for folder in sorted(p for p in args.models.iterdir() if (p / "weights.pt").is_file()):
    if args.only and not any(s in folder.name for s in args.only.split(",")):
        continue
    family, kind, seed = folder.name.rsplit("_", 2)
    model = load_model(folder)
    ds = read_netcdf(args.work / family / "results" / "dataset.nc")
    data = pipeline._select(ds, model, settings, family)
    n = min(settings.synergy_max_syllables, len(data.counts))
    pick = np.sort(np.random.default_rng(settings.seed).choice(len(data.counts), n, replace=False))
    x = {m: v[pick] for m, v in data.x.items()}
    t = args.target
    other = next(m for m in model.modalities if m != t)
    ll = {key: conditional_log_likelihood(model, x, t, given, k=settings.synergy_k, seed=settings.seed)
          for key, given in (("joint", (t, other)), ("self", (t,)), ("cross", (other,)))}
    d_js, d_sc = ll["joint"] - ll["self"], ll["self"] - ll["cross"]
    se = lambda v: float(v.std(ddof=1) / np.sqrt(len(v)))  # noqa: E731
    joint_ok, self_ok = d_js.mean() > -2 * se(d_js), d_sc.mean() > 2 * se(d_sc)
    rows.append({"family": family, "kind": kind, "seed": int(seed), "joint": ll["joint"].mean(),
                 "self": ll["self"].mean(), "cross": ll["cross"].mean(),
                 "joint_minus_self": d_js.mean(), "se_js": se(d_js), "self_minus_cross": d_sc.mean(),
                 "se_sc": se(d_sc), "fails": ",".join(f for f, ok in (("joint<self", joint_ok),
                                                                    ("self<=cross", self_ok)) if not ok) or "-"})
    print(rows[-1], file=sys.stderr, flush=True)
table = pd.DataFrame(rows)
if args.csv:
    table.to_csv(args.csv, index=False)
pd.set_option("display.width", 250)
print(table.round(3).to_string(index=False))

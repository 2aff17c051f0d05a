"""Which inequality of the synergy ordering (joint ≥ self > cross) fails, per trained model.

For models trained by ``benchmarks/bench_model_quality.py`` (folders ``<family>_<kind>_<seed>``
under ``--models``, datasets under ``--work``), computes on the analysis stage's syllables and
settings (``mmneuro.analysis.synergy``, K = 50, 500 held-out syllables) the per-syllable
log p(x_t | joint), log p(x_t | self), log p(x_t | cross) for the target ``--target`` and prints
the paired mean differences with their standard errors, the ordering verdict of ``synergy_table``
and which inequality fails. For the mixture posteriors (MMVAE, MoPoE) it also gives the same
estimate from each component q_c of q(z | joint) alone (``comp_<c>``, components in the model's
order: MMVAE audio, neural; MoPoE audio, neural, audio+neural) and their log-mean-exp
(``mix``), which the joint estimate equals up to Monte-Carlo error: so joint ≥ best component − log C.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/probe_synergy.py --models /work/bq2/models \\
        --work /work/bq2 [--target neural]
"""
import argparse
import math
import re
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


def component_estimates(model, x, target, k, seed):
    """log (1/K) Σ_k p(x_t | z_k), z_k ~ q_c, for every component c of q(z | joint), and their log-mean-exp."""
    generator = torch.Generator().manual_seed(seed)
    xs = {m: torch.from_numpy(v) for m, v in x.items()}
    with torch.no_grad():
        comps = model.encode(xs).fused.components
        per = []
        for c in range(comps.mean.shape[0]):
            z = comps[c].rsample(k, generator=generator)
            lp = torch.stack([model.decode(zz, [target])[target].log_prob(xs[target]) for zz in z])
            per.append(torch.logsumexp(lp, 0) - math.log(k))
        per = torch.stack(per)
        mix = torch.logsumexp(per, 0) - math.log(len(per))
    return {f"comp_{c}": float(p.mean()) for c, p in enumerate(per)} | {"mix": float(mix.mean())}


def main() -> None:
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
        family, kind, seed = re.match(r"(.+?)_(mvae|mmvae|mopoe)_(\d+)", folder.name).groups()  # (+ _<--set> tags)
        model = load_model(folder)
        ds = read_netcdf(args.work / family / "results" / "dataset.nc")
        data = pipeline.analysis_data(ds, model, settings, family)
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
        rows.append({"model": folder.name, "family": family, "kind": kind, "seed": int(seed), "joint": ll["joint"].mean(),
                     "self": ll["self"].mean(), "cross": ll["cross"].mean(),
                     "joint_minus_self": d_js.mean(), "se_js": se(d_js), "self_minus_cross": d_sc.mean(),
                     "se_sc": se(d_sc), "fails": ",".join(f for f, ok in (("joint<self", joint_ok),
                                                                        ("self<=cross", self_ok)) if not ok) or "-"})
        if model.config.kind in ("mmvae", "mopoe"):
            rows[-1] |= component_estimates(model, x, t, settings.synergy_k, settings.seed)
        print(rows[-1], file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    pd.set_option("display.width", 250)
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()

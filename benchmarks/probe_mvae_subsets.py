"""What each MVAE subset posterior decodes (docs/models.md, "The MVAE's neural posterior").

For trained models (folders of ``bench_model_quality.py`` or ``mmneuro train``) and their dataset's
validation syllables: for each subset posterior q(z | x_A) of the fit objective (A = joint, audio,
neural; PoE with the N(0, I) expert), the mean over ``--draws`` draws of the unweighted log p(x_m | z)
of each modality, its KL to the prior, and the neural expert's share of the joint PoE's precision;
plus the log-likelihood of the counts under the training syllables' mean rates (+ ½ spike per
element, as ``output_bias_init`` starts the decoder). Nats per syllable.

    .venv/bin/python benchmarks/probe_mvae_subsets.py --dataset /tmp/bq/few_units/results/dataset.nc \\
        /work/bq4/models/few_units_mvae_0 /tmp/bq/models/few_units_mvae_0
"""
import argparse

import numpy as np
import torch
from scipy.special import gammaln

from mmneuro.inputs import training_arrays
from mmneuro.io import read_netcdf
from mmneuro.models import load_model
from mmneuro.models.fusion import product_of_experts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--draws", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)

    ds = read_netcdf(args.dataset)
    arrays = training_arrays(ds, "counts", ("audio", "neural"), args.dataset)
    split = ds["split"].values
    counts = arrays["neural"].astype(np.float64)
    mu = (counts[split == "train"].sum(0) + 0.5) / (split == "train").sum()
    val = counts[split == "val"]
    mean_rate_ll = (val * np.log(mu) - mu - gammaln(val + 1)).reshape(len(val), -1).sum(1).mean()
    print(f"{args.dataset}: log p(neural) at the mean rates {mean_rate_ll:.1f}")
    x = {m: torch.from_numpy(a[split == "val"]) for m, a in arrays.items()}
    for folder in args.models:
        model = load_model(folder)
        with torch.no_grad():
            xs, mask = model._prepare(x, None)
            unimodal, _ = model._encode_unimodal(xs, mask)
            log_lik = model._log_lik_fn(xs, mask, weighted=False)
            cells = []
            for label, members in (("joint", [0, 1]), ("audio", [0]), ("neural", [1])):
                subset = torch.zeros_like(mask)
                subset[members] = mask[members]
                q = product_of_experts(unimodal, subset, True)
                ll = log_lik(q.rsample(args.draws, generator=torch.Generator().manual_seed(0)), None).mean((0, 2))
                cells.append(f"{label}: audio {ll[0]:.1f} neural {ll[1]:.1f} KL {q.kl_to_standard_normal().mean():.1f}")
            precision = (-unimodal.logvar).exp()
            share = float((precision[1] / (precision.sum(0) + 1.0)).mean())
        print(f"{folder}: " + "; ".join(cells) + f"; neural share of the joint precision {share:.3f}")


if __name__ == "__main__":
    main()

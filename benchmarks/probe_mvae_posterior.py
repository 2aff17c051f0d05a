"""Why the MVAE's neural posterior stays weak (docs/models.md, "The MVAE's neural posterior").

Trains one model of ``benchmarks/bench_model_quality.py`` (same dataset, same workflow settings,
``--set`` overrides) and records, every ``--every``-th training batch: the gradient norm that each
ELBO term (reconstruction / KL of the joint, audio-only and neural-only subsets) sends into the
neural expert's encoder (MLP + Gaussian head), and the neural expert's share of the precision in the
joint PoE (precision_n / (precision_a + precision_n + 1), the 1 being the N(0, I) expert; mean over
syllables and latent dimensions), with the median precision of each expert, and what the neural
decoder does with its output bias: ``rate_bias`` is the mean rate its last bias alone decodes
(likelihood mean of the bias; printed next to the data's mean count per unit and bin), ``rate_sd_z`` the SD of its
decoded rates across 64 draws z ~ N(0, I) (mean over units and bins). Per epoch it prints
those means next to metrics.csv's terms (validation) and writes them as CSV under ``--out``.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/probe_mvae_posterior.py --family few_units \\
        --work /tmp/bq --out /tmp/probe_mvae [--set output_bias_init=false] [--set mvae_cross_reconstruction=true]
"""
import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

import mmneuro.models.mvae as model_module  # the MVAE's module: its subset_elbos is the one it calls
from mmneuro.io import read_netcdf
from mmneuro.train import fit

sys.path.insert(0, str(Path(__file__).parent))
from bench_model_quality import build_dataset, train_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="few_units")
    ap.add_argument("--kind", default="mvae")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True, help="bench_model_quality.py's work folder (datasets)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--every", type=int, default=4, help="record every N-th training batch")
    args = ap.parse_args()
    torch.set_num_threads(1)

    records, state = [], {"batch": 0, "epoch": 1, "model": None}
    original_elbos = model_module.subset_elbos


    def recording_elbos(unimodal, present, log_lik, subsets, beta, *rest, **kw):
        loss, terms = original_elbos(unimodal, present, log_lik, subsets, beta, *rest, **kw)
        model = state["model"]
        if model is None or not torch.is_grad_enabled() or not model.training:
            return loss, terms
        state["batch"] += 1
        if state["batch"] % args.every:
            return loss, terms
        expert = model.experts["neural"]
        params = [p for p in [*expert.encoder.parameters(), *expert.head.parameters()] if p.requires_grad]
        names = {"0+1": "joint", "0": "audio", "1": "neural"}
        row = {"epoch": state["epoch"]}
        for key, value in terms.items():
            part, _, subset = key.partition("_")
            value = value.mean() * (beta if part == "kl" else -1.0)  # as it enters the loss
            if not value.requires_grad:
                continue
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            row[f"g_{part}_{names[subset]}"] = float(torch.sqrt(sum((g**2).sum() for g in grads if g is not None)))
        with torch.no_grad():
            prec = (-unimodal.logvar).exp()  # (M, N, D), audio first
            row["share_neural"] = float((prec[1] / (prec.sum(0) + 1.0)).mean())
            row["prec_audio"], row["prec_neural"] = float(prec[0].median()), float(prec[1].median())
            bias = expert.decoder.net[-3].bias.view(expert.shape)
            row["rate_bias"] = float(expert.likelihood.mean(bias).mean())
            z = torch.randn(64, unimodal.mean.shape[-1], generator=torch.Generator().manual_seed(0))
            row["rate_sd_z"] = float(expert.likelihood.mean(expert.decode(z)).std(0).mean())
        records.append(row)
        return loss, terms


    model_module.subset_elbos = recording_elbos
    original_init = model_module.MultimodalVAE.__init__


    def remember(self, *a, **k):
        original_init(self, *a, **k)
        state["model"] = self


    model_module.MultimodalVAE.__init__ = remember


    def next_epoch(epoch: int) -> None:
        state["epoch"] = epoch + 1


    dataset = build_dataset(args.family, args.work)
    tag = "_".join([args.family, args.kind, str(args.seed)] + [s.replace("=", "-") for s in args.set])
    out = args.out / tag
    config = train_config(args.kind, args.seed, args.set)
    fit(dataset, config, out / "model", progress=False, on_epoch_end=next_epoch, on_mismatch="restart")
    probe = pd.DataFrame(records).groupby("epoch").mean()
    metrics = pd.read_csv(out / "model" / "metrics.csv").set_index("epoch")
    keep = [c for c in metrics.columns if c.startswith("val_") and ("kl" in c or "recon" in c) and "info" not in c]
    table = probe.join(metrics[keep].rename(columns=lambda c: c[4:]))
    table.to_csv(out / "probe.csv")
    pd.set_option("display.width", 250)
    print(tag)
    counts = read_netcdf(dataset)["counts"]
    print(f"mean count per unit and bin: {float(counts.mean()):.4f}")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()

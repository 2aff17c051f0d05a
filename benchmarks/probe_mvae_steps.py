"""Why the MVAE's audio -> neural prediction falls with optimiser steps on some data (issue 20).

Trains one model with early stopping off (every epoch to the cap; every epoch's randomness is seeded
from (seed, epoch), so the trajectory is the one early stopping would cut short) and records per
epoch, on the validation syllables (one seeded draw each, weighted likelihoods as in the loss):

* the validation terms of metrics.csv (recon/kl per subset);
* ``x_a2n`` / ``x_n2a``: −log p(x_neural | z ~ q(z | audio)) and −log p(x_audio | z ~ q(z | neural)), the
  cross terms Wu & Goodman's objective does not train; ``self_n``: −log p(x_neural | z ~ q(z | both));
* ``kl_a_j``: KL(q(z | audio) ‖ q(z | both)), the mismatch between the posterior audio -> neural
  decodes from and the one the neural decoder is trained on; ``share_n``: the neural expert's share
  of the joint PoE's precision; ``kl_a`` / ``kl_n`` / ``kl_j``: each posterior's KL to N(0, I);
* held-out ``r``: audio -> neural r (mean per unit, test syllables, counts summed over bins), on
  multi-day data ``r_rate`` (against the planted expected counts), ``bps`` (bits per spike of the same
  prediction), ``n2a`` / ``a2a`` (mean per-syllable r of the image generated from neurons / sound).

Data: ``--family`` of benchmarks/bench_model_quality.py at the workflow's settings, or ``--multiday
SEED`` (benchmarks/bench_multisession.py's data and CONFIG; ``--day dayN`` per-session, else shared).
Writes one CSV per run under ``--out``::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/probe_mvae_steps.py --family few_units --work /tmp/bq --out /tmp/probe
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/probe_mvae_steps.py --multiday 1 --day day1 --out /tmp/probe
    python benchmarks/probe_mvae_steps.py --out /tmp/probe --summary   # the epoch early stopping keeps, per run
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import mmneuro.train as train_module
from mmneuro.models.fusion import DiagGaussian, product_of_experts

sys.path.insert(0, str(Path(__file__).parent))


def kl_gauss(p: DiagGaussian, q: DiagGaussian) -> torch.Tensor:
    """KL(p ‖ q) of diagonal Gaussians, summed over the latent axis."""
    return 0.5 * ((p.variance + (p.mean - q.mean) ** 2) / q.variance
                  - 1.0 + q.logvar - p.logvar).sum(-1)


@torch.no_grad()
def diagnostics(model, x: dict) -> dict:
    """The module docstring's per-epoch terms on ``x`` ({modality: tensor}), means over the samples
    that have both modalities."""
    xs, mask, observed = model._prepare(x, None)
    unimodal, _ = model._encode_unimodal(xs, mask)
    log_lik = model._log_lik_fn(xs, mask, observed=observed)
    prior = model.prior_expert
    only = lambda i: torch.stack([mask[j] & (j == i) for j in range(len(mask))])  # noqa: E731
    q_a, q_n, q_j = (product_of_experts(unimodal, m, prior) for m in (only(0), only(1), mask))
    gen = torch.Generator().manual_seed(0)
    ll = {k: log_lik(q.rsample(generator=gen)[None], None)[0] for k, q in (("a", q_a), ("n", q_n), ("j", q_j))}
    both = mask.all(0)
    prec = (-unimodal.logvar).exp()
    out = {"x_a2n": -ll["a"][1], "x_n2a": -ll["n"][0], "self_n": -ll["j"][1], "self_a": -ll["j"][0],
           "kl_a_j": kl_gauss(q_a, q_j), "kl_j_a": kl_gauss(q_j, q_a),
           "share_n": (prec[1] / (prec.sum(0) + float(prior))).mean(-1),
           "kl_a": q_a.kl_to_standard_normal(), "kl_n": q_n.kl_to_standard_normal(), "kl_j": q_j.kl_to_standard_normal()}
    return {k: float(v[both].mean()) for k, v in out.items()}


def audio_to_neural_r(model, x: dict, targets: dict[str, np.ndarray], units=None) -> dict:
    """Mean per-unit Pearson r of the rates predicted from audio (summed over bins) with each target,
    and ``n2a`` / ``a2a``: mean per-syllable r of the image generated from neurons / from sound."""
    from mmneuro.analysis.crosspred import overall_bits_per_spike
    from mmneuro.analysis.neurons import correlation, pearson_columns

    x = {m: torch.from_numpy(v) for m, v in x.items()}
    with torch.no_grad():
        pred = model.predict(x, ["audio"], "neural").numpy()
        images = {k: model.predict(x, [k], "audio").numpy() for k in ("neural", "audio")}
    pred = pred.reshape(len(pred), pred.shape[1], -1).sum(-1)
    if units is not None:
        pred = pred[:, units]
    out = {k: float(np.nanmean(np.diag(correlation(pred, t)))) for k, t in targets.items()}
    out["bps"] = overall_bits_per_spike(targets["r"], pred)  # against the counts
    flat = x["audio"].numpy().reshape(len(pred), -1)
    for key, src in (("n2a", "neural"), ("a2a", "audio")):
        out[key] = float(np.nanmean(pearson_columns(flat.T, images[src].reshape(flat.shape).T)))
    return out


def trajectory(ds, config: dict, scorer, val_x: dict) -> pd.DataFrame:
    """Train without early stopping; per epoch the validation terms, :func:`diagnostics` and
    ``scorer(model)``."""
    rows = []
    original = train_module.fit_epoch

    def recording(model, *args, **kw):
        terms, score = original(model, *args, **kw)
        rows.append({"epoch": args[5], **{k: v for k, v in terms.items() if k.startswith("val_")},
                     **diagnostics(model, val_x), **scorer(model)})
        return terms, score

    train_module.fit_epoch = recording
    try:
        train_module.fit_model(ds, config | {"patience": 10**6}, progress=False)
    finally:
        train_module.fit_epoch = original
    return pd.DataFrame(rows).set_index("epoch")


def family_run(family: str, work: Path, kind: str, seed: int, overrides: list[str]):
    from bench_model_quality import build_dataset, train_config

    from mmneuro.inputs import training_arrays
    from mmneuro.io import read_netcdf

    ds = read_netcdf(build_dataset(family, work))
    config = train_config(kind, seed, overrides)
    arrays = training_arrays(ds, config.get("neural_input", "counts"), ("audio", "neural"), family)
    split = ds["split"].values.astype(str)
    val_x = {m: torch.from_numpy(a[split == "val"]) for m, a in arrays.items()}
    test = split == "test"
    counts = ds["counts"].transpose("syllable", "unit", ...).values
    target = {"r": counts[test].reshape(test.sum(), counts.shape[1], -1).sum(-1)}
    return ds, config, val_x, lambda model: audio_to_neural_r(model, {m: a[test] for m, a in arrays.items()}, target)


def multiday_run(seed: int, day: str | None, kind: str, overrides: list[str]):
    from bench_multisession import CONFIG, planted_counts

    from mmneuro.analysis.multisession import session_view
    from mmneuro.cli.train import apply_overrides
    from mmneuro.dataset import assemble_parts, recorded_units
    from mmneuro.inputs import training_arrays
    from mmneuro.synth.multiday import multiday_sessions

    parts, truth = multiday_sessions(seed, n_syllables=600, per_band=12)
    shared = assemble_parts(parts, units={sid: "own" for sid, _, _ in parts})
    config = apply_overrides(CONFIG | {"kind": kind}, overrides)
    if day is None:
        ds = shared
    else:
        own = shared.isel(syllable=np.flatnonzero(shared["session"].values == day))
        ds = assemble_parts([p for p in parts if p[0] == day]).assign_coords(split=("syllable", own["split"].values))
    arrays = training_arrays(ds, "total_counts", ("audio", "neural"), "multiday")
    split = ds["split"].values.astype(str)
    val_x = {m: torch.from_numpy(a[split == "val"]) for m, a in arrays.items()}
    scored = []
    for sid in ([day] if day else [p[0] for p in parts]):
        rows = np.flatnonzero(ds["session"].values == sid) if "session" in ds.coords else np.arange(ds.sizes["syllable"])
        view = session_view(ds, sid) if day is None else ds
        test = view["split"].values == "test"
        units = recorded_units(ds)[sid] if day is None else None
        scored.append((sid, {m: a[rows][test] for m, a in arrays.items()}, {"r": view["total_counts"].values[test],
                                                          "r_rate": planted_counts(view, truth, sid)[test]}, units))

    def scorer(model):
        out = {}
        for sid, audio, targets, units in scored:
            out |= {f"{k}_{sid}": v for k, v in audio_to_neural_r(model, audio, targets, units).items()}
        for key in ("r_rate", "n2a", "a2a", "bps"):
            out[key] = float(np.mean([v for k, v in out.items() if k.startswith(key + "_")]))
        return out

    return ds, config, val_x, scorer


def early_stopped(table: pd.DataFrame, patience: int = 8, score: str = "val_loss") -> int:
    """The epoch fit_model keeps on this trajectory: the best ``score`` before ``patience`` epochs
    without improvement (the trajectory does not depend on when training stops)."""
    best, best_epoch, bad = np.inf, table.index[0], 0
    for epoch, value in table[score].items():
        if bad >= patience:
            break
        if value < best:
            best, best_epoch, bad = value, epoch, 0
        else:
            bad += 1
    return int(best_epoch)


def summary(folder: Path) -> None:
    """Per CSV of ``folder``: the early-stopped epoch's scores and the best epoch's r (or r_rate)."""
    rows = []
    for path in sorted(folder.glob("*.csv")):
        table = pd.read_csv(path).set_index("epoch")
        key = "r_rate" if "r_rate" in table else "r"
        epoch = early_stopped(table)
        rows.append({"run": path.stem, "epoch": epoch, key: table.loc[epoch, key], "n2a": table.loc[epoch, "n2a"],
                     "a2a": table.loc[epoch, "a2a"], "bps": table.loc[epoch].get("bps", np.nan),
                     f"best_{key}": table[key].max(),
                     "best_epoch": int(table[key].idxmax()), "last": int(table.index[-1])})
    pd.set_option("display.width", 250)
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family")
    ap.add_argument("--multiday", type=int, help="data seed of bench_multisession's planted days")
    ap.add_argument("--day", help="multiday: this day alone (per-session model); default: the shared model")
    ap.add_argument("--kind", default="mvae")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, help="epoch cap (default: the config's)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_model_quality"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--summary", action="store_true", help="only summarise the CSVs already in --out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.summary:
        return summary(args.out)
    if args.family:
        ds, config, val_x, scorer = family_run(args.family, args.work, args.kind, args.seed, args.set)
        tag = f"{args.family}_{args.kind}_{args.seed}"
    else:
        ds, config, val_x, scorer = multiday_run(args.multiday, args.day, args.kind, args.set)
        tag = f"multiday{args.multiday}_{args.day or 'shared'}_{args.kind}"
        config = config | {"seed": args.seed}
        tag += f"_{args.seed}"
    if args.epochs:
        config = config | {"epochs": args.epochs}
    tag += "".join("_" + s.replace("=", "-") for s in args.set)
    table = trajectory(ds, config, scorer, val_x)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / f"{tag}.csv")
    pd.set_option("display.width", 250)
    print(tag)
    cols = [c for c in table if c in ("val_loss", "x_a2n", "x_n2a", "self_n", "kl_a_j", "kl_j_a", "share_n",
                                       "kl_a", "kl_n", "kl_j", "r", "r_rate", "n2a", "a2a", "bps") or c.startswith("val_recon")
            or c.startswith("val_kl_")]
    print(table[cols].round(3).to_string())


if __name__ == "__main__":
    main()

"""Linear probes of planted factors on the demo data: factorised vs unfactorised model (issue 10).

Trains one unfactorised and one factorised model with mmneuro.train.fit on DEMO/dataset.nc, then
reports out-of-fold ridge R² (mmneuro.analysis.factors.probe_r2) of each planted/measured factor
from each latent part of the joint posterior mean, over all syllables matched to a planted one:

* audio-only: planted log amplitude (no neuron encodes it) and the measured ``amplitude_db``;
* shared (planted tuning): mean frequency and duration;
* neural-only: the planted slow drift sin(2π t_neural / period + phase) on the untuned units;
* cross generation: the same probes on generated neural rates (from audio; log amplitude) and
  generated spectrograms (from neurons; slow drift): a source-private factor should not show up.

Make the demo data first (docs/models.md, "Shared and private latents"), then::

    .venv/bin/python benchmarks/probe_factorisation.py /tmp/fx_demo --epochs 40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def planted_targets(demo: Path, ds) -> dict[str, np.ndarray]:
    """Per-syllable factors from ground_truth.json (``mmneuro.synth.scoring.planted_factors``, NaN
    where a syllable has no planted match) plus the measured ``amplitude_db``."""
    from mmneuro.synth import load_ground_truth
    from mmneuro.synth.scoring import planted_factors

    truths = {s: load_ground_truth(demo / s) for s in np.unique(ds["session"].values)}
    planted = planted_factors(ds["session"].values, ds["onset_s"].values, truths, tolerance_s=0.01)
    return {"log_amplitude (audio-only)": planted["log_amplitude"],
            "amplitude_db (audio-only, measured)": ds["amplitude_db"].values.astype(float),
            "harmonic (audio-only)": planted["harmonic"],
            "mean_freq_hz (shared)": planted["mean_freq_hz"],
            "duration_s (shared)": planted["duration_s"],
            "slow_drift (neural-only)": planted["slow_drift"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="folder with dataset.nc and <session>/ground_truth.json")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--kind", default="mvae")
    ap.add_argument("--shared", type=int, default=8)
    ap.add_argument("--private", type=int, default=4)
    ap.add_argument("--alignment", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/fx_models"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra model/train config for the models trained (YAML values, dotted keys), e.g. beta=2")
    ap.add_argument("--only", choices=("both", "factorised", "unfactorised"), default="both")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workflow-defaults", action="store_true",
                    help="train with the workflow's defaults (binned counts, full-size experts) instead of the "
                         "small total-count experts")
    ap.add_argument("--json", type=Path, help="also write the rows here (for sweeps)")
    args = ap.parse_args()

    import torch
    import xarray as xr

    from mmneuro.analysis import embed
    from mmneuro.analysis.factors import latent_parts, leak_probe, probe_r2
    from mmneuro.inputs import model_inputs
    from mmneuro.train import fit
    from mmneuro.cli.train import apply_overrides

    torch.set_num_threads(args.threads)
    ds = xr.load_dataset(args.demo / "dataset.nc")
    targets = planted_targets(args.demo, ds)
    base = {"kind": args.kind, "epochs": args.epochs, "patience": args.epochs}
    if not args.workflow_defaults:
        base |= {"neural_input": "total_counts", "audio": {"channels": [16, 16, 32, 32], "hidden": [128]},
                 "neural": {"hidden": [128, 128]}}
    configs = {"unfactorised": {**base, "latent_dim": args.shared + 2 * args.private},
               "factorised": {**base, "latent_dim": args.shared, "private_dims": args.private,
                              "shared_alignment": args.alignment}}
    if args.only != "both":
        configs = {args.only: configs[args.only]}
    configs = {name: apply_overrides(config, args.set) for name, config in configs.items()}
    both = (ds["has_audio"].values > 0) & (ds["has_neural"].values > 0)
    print(f"{both.sum()} syllables with both modalities; {args.kind}, {args.epochs} epochs, "
          f"D = {args.shared} shared + {args.private} per modality private (unfactorised: all {args.shared + 2 * args.private})")
    sub = ds.isel(syllable=np.flatnonzero(both))
    print("corr(planted log amplitude, amplitude_db) = "
          f"{np.corrcoef(*[v[both][np.isfinite(targets['log_amplitude (audio-only)'][both])] for v in (targets['log_amplitude (audio-only)'], targets['amplitude_db (audio-only, measured)'])])[0, 1]:.3f}")
    rows = []
    for name, config in configs.items():
        t0 = time.perf_counter()
        # one folder per configuration, so a rerun resumes/reuses instead of refusing a changed config
        tag = f"{args.kind}_e{args.epochs}_s{args.shared}" + (f"_p{args.private}_g{args.alignment}" if "private_dims" in config else "")
        tag += "_wf" * args.workflow_defaults + "".join(f"_{item.replace('=', '-')}" for item in args.set)
        model = fit(ds, config, args.out / f"{name}_{tag}", progress=False).cpu()
        elapsed = time.perf_counter() - t0
        x = model_inputs(sub, model)
        z, _ = embed.posterior_moments(model, x, tuple(model.modalities))
        parts = {**latent_parts(model), "all": slice(0, z.shape[1])}
        for target, y in targets.items():
            y = y[both]
            ok = np.isfinite(y)
            for part, sl in parts.items():
                rows.append((name, target, part, probe_r2(z[ok][:, sl], y[ok])))
        # cross generation must not copy the source's private factor into the target
        for src, dst, target in (("audio", "neural", "log_amplitude (audio-only)"),
                                 ("neural", "audio", "slow_drift (neural-only)")):
            gen = embed.cross_generate(model, x, src, dst)
            rows.append((name, f"{target} from {src}->{dst}", "generated",
                         leak_probe(gen, targets[target][both], log=dst == "neural")))
        print(f"{name}: trained in {elapsed:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))
    print(f"\n{'model':<13} {'factor':<38} {'part':<15} R²")
    for name, target, part, r2 in rows:
        print(f"{name:<13} {target:<38} {part:<15} {r2:6.3f}")


if __name__ == "__main__":
    main()

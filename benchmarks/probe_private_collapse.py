"""Where the factorised MVAE's audio-private part goes during training (docs/models.md, "On the demo data").

Trains the demo's ``mvae_factorised`` configuration and prints, after every epoch, on 256 fixed
syllables with both modalities: the KL of q(w_audio | audio) per dimension (sorted) and of the audio
expert's shared part, ridge R² of the planted log amplitude from the w_audio means and from the
shared means (``r2_amp_*``), how much the audio decoder's output moves (RMS) when w_audio, or z_shared,
is redrawn from the prior (``dec_sd_*``), the gradient norms of the reconstruction and the KL into the
private rows of the audio head, and the loss terms. At the end: the planted-factor probes per part
and the cross-generation leaks, as ``mmneuro analyse --truth`` computes them.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probe_private_collapse.py base
    ... --init old            # PyTorch's default init in the audio expert (add --set audio.norm=none: the old model)
    ... --no-cross            # ablation: subset ELBOs reconstruct only their own modalities
    ... --set shared_alignment=0 / --set audio.likelihood_params.scale=0.05
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import mmneuro.models.experts as E
import mmneuro.train as T
from mmneuro.analysis import embed
from mmneuro.analysis.factors import latent_parts, leak_probe, probe_r2
from mmneuro.cli.train import apply_overrides

sys.path.insert(0, str(Path(__file__).parent))
from probe_factorisation import planted_targets  # noqa: E402


def main() -> None:
    from mmneuro.inputs import model_inputs, training_arrays

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tag", help="name of this run (model folder and JSON under --out)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides, as mmneuro train")
    ap.add_argument("--init", choices=("kaiming", "old"), default="kaiming", help="audio expert init")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cross", action="store_true", help="ablation: subset ELBOs reconstruct only their own modalities")
    ap.add_argument("--data", default="results/dataset.nc")
    ap.add_argument("--truth", default="data/demo", help="folder with <session>/ground_truth.json")
    ap.add_argument("--out", default="/tmp/private_collapse")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = xr.load_dataset(args.data)
    targets = planted_targets(Path(args.truth), ds)
    amp = targets["log_amplitude (audio-only)"]
    both = (ds["has_audio"].values > 0) & (ds["has_neural"].values > 0)

    if args.init == "old":  # undo experts.kaiming_init: every layer back to PyTorch's reset_parameters
        orig_expert_init = E.Expert.__init__

        def old_init(self, shape, latent_dim, network, *a, **k):
            orig_expert_init(self, shape, latent_dim, network, *a, **k)
            if network == "conv":
                for m in self.modules():
                    if hasattr(m, "reset_parameters") and not isinstance(m, torch.nn.GroupNorm):
                        m.reset_parameters()
        E.Expert.__init__ = old_init

    if args.no_cross:
        import mmneuro.models.mvae as MM  # the module whose subset_elbos the MVAE calls
        import mmneuro.models.objectives as O

        def no_cross(unimodal, present, log_lik, subsets, beta, prior_expert=True, generator=None, complete=None):
            m = present.shape[0]
            member = torch.zeros(len(subsets), m, dtype=torch.bool, device=present.device)
            for s_, subset in enumerate(subsets):
                member[s_, list(subset)] = True
            def own(z, targets):
                return log_lik(z, member)
            return O.subset_elbos(unimodal, present, own, subsets, beta, prior_expert, generator, complete)
        MM.subset_elbos = no_cross
    holder = {}
    _build_model = T.build_model
    def capture(config):
        holder["m"] = _build_model(config); return holder["m"]
    T.build_model = capture

    config = {"kind": "mvae", "latent_dim": 8, "private_dims": 12, "shared_alignment": 5,
              "neural_input": "total_counts", "epochs": args.epochs, "patience": 8, "seed": args.seed}
    config = apply_overrides(config, args.set)
    arrays = training_arrays(ds, config.get("neural_input", "counts"), ("audio", "neural"), "x")
    idx = np.flatnonzero(both)
    rng = np.random.default_rng(0); diag_idx = np.sort(rng.choice(idx, 256, replace=False))
    xdiag = {m: torch.from_numpy(a[diag_idx]) for m, a in arrays.items()}
    ampd = amp[diag_idx]; okd = np.isfinite(ampd)
    log = []
    def diag(epoch):
        model = holder["m"]; model.eval()
        d = model.config.latent_dim; pa = model.parts["audio_private"]
        with torch.no_grad():
            q = model.experts["audio"].encode(xdiag["audio"])
            wm, wlv = q.mean[:, d:], q.logvar[:, d:]
            kl_dim = (0.5 * (wm**2 + wlv.exp() - 1 - wlv)).mean(0).numpy()
            sm = q.mean[:, :d]
            kl_sh = (0.5 * (sm**2 + q.logvar[:, :d].exp() - 1 - q.logvar[:, :d])).mean(0).numpy()
            # decoder sensitivity to w_audio vs shared: SD over prior draws of w (shared fixed at posterior mean)
            z = torch.cat([sm[:64], torch.zeros(64, wm.shape[1])], -1)
            base = model.experts["audio"].decode(z)
            zw = z.clone(); zw[:, d:] = torch.randn(64, wm.shape[1], generator=torch.Generator().manual_seed(0))
            dw = (model.experts["audio"].decode(zw) - base).pow(2).mean().sqrt().item()
            zs = z.clone(); zs[:, :d] = torch.randn(64, d, generator=torch.Generator().manual_seed(1))
            ds_ = (model.experts["audio"].decode(zs) - base).pow(2).mean().sqrt().item()
        r2w = probe_r2(wm.numpy()[okd], ampd[okd]); r2s = probe_r2(sm.numpy()[okd], ampd[okd])
        # gradients into the private head rows: recon (beta=0) vs total
        model.train()
        head = model.experts["audio"].head.linear
        rows = list(range(d, d + wm.shape[1]))
        gn = {}
        for b in (0.0, 1.0):
            model.zero_grad()
            loss, terms = model.loss(xdiag, beta=b, generator=torch.Generator().manual_seed(5))
            loss.backward()
            gn[b] = head.weight.grad[rows].clone()
        model.zero_grad()
        g_rec, g_kl = gn[0.0], gn[1.0] - gn[0.0]
        cos = float((g_rec * g_kl).sum() / (g_rec.norm() * g_kl.norm() + 1e-30))
        row = {"epoch": epoch, "kl_w_audio_dims": np.round(np.sort(kl_dim)[::-1], 2).tolist(),
               "kl_w_audio": float(kl_dim.sum()), "kl_shared_audio": float(kl_sh.sum()),
               "r2_amp_w": r2w, "r2_amp_shared_audio": r2s, "dec_sd_w": dw, "dec_sd_shared": ds_,
               "g_rec": float(g_rec.norm()), "g_kl": float(g_kl.norm()), "cos": cos,
               **{k: v for k, v in terms.items() if k.startswith(("recon", "kl_", "shared"))}}
        log.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        model.train()

    out = Path(args.out) / args.tag
    t0 = time.time()
    model = T.fit(ds, config, out, progress=False, on_epoch_end=diag, on_mismatch="restart").cpu()
    print(f"trained {time.time()-t0:.0f}s")
    sub = ds.isel(syllable=idx)
    x = model_inputs(sub, model)
    z, _ = embed.posterior_moments(model, x, tuple(model.modalities))
    res = {}
    for target in ("log_amplitude (audio-only)", "mean_freq_hz (shared)", "duration_s (shared)", "slow_drift (neural-only)"):
        y = targets[target][both]; ok = np.isfinite(y)
        res[target] = {p: round(probe_r2(z[ok][:, sl], y[ok]), 3) for p, sl in latent_parts(model).items()}
    gen = embed.cross_generate(model, x, "audio", "neural")
    res["leak amp a->n"] = round(leak_probe(gen, amp[both], log=True), 3)
    gen = embed.cross_generate(model, x, "neural", "audio")
    res["leak drift n->a"] = round(leak_probe(gen, targets["slow_drift (neural-only)"][both]), 3)
    print("RESULT", args.tag, json.dumps(res))
    (Path(args.out) / f"{args.tag}.json").write_text(json.dumps({"args": vars(args), "log": log, "res": res}))


if __name__ == "__main__":
    main()

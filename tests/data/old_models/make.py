"""Make the backward-compatibility fixture read by tests/test_models_persistence.py.

It must run against the code of an EARLIER release, not today's, so that the fixture is what that
release wrote. The committed fixture was made with commit 6d3cfbe (the last one before
mmneuro/models/ was split by kind)::

    git worktree add --detach /tmp/old 6d3cfbe
    PYTHONPATH=/tmp/old OMP_NUM_THREADS=1 python tests/data/old_models/make.py
    git worktree remove /tmp/old

For each kind in KINDS it trains a tiny model (MLP audio expert on 8x8 images, 4 units x 2 bins,
latent_dim 2, up to 30 epochs, min_steps 0, seed 0) with that code's ``mmneuro.train.fit`` and keeps the
folder's ``config.json`` (model + train sections, as fit writes it) and ``weights.pt`` (written by
the model's own ``save``) in ``<kind>/``. ``<kind>/outputs.npz`` holds inputs and what that code
computed from them in eval mode: encode means/variances (all inputs, and with one sample's neural
row missing), cross-generation both ways, reconstructions, log-likelihoods and the loss and its
terms, each at a fixed generator seed. ``made_with.json`` records the commit and library versions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import mmneuro
from mmneuro.train import fit

HERE = Path(__file__).resolve().parent
KINDS = ("mvae", "mmvae", "mopoe")
CONFIG = {"latent_dim": 2, "epochs": 30, "min_steps": 0, "batch_size": 16, "lr": 3e-3, "seed": 0,
          "audio": {"network": "mlp", "hidden": [16], "input_transform": "none"}, "neural": {"hidden": [16]}}


def dataset(n=48, side=8, units=4, bins=2, seed=0) -> xr.Dataset:
    """Images and Poisson counts that both follow a 2-D latent u ~ U(0, 1)^2 (images: a logistic map
    of u, counts: log-linear rates); every 4th syllable is in ``val``."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=(n, 2))
    spec = 1.0 / (1.0 + np.exp(-(u - 0.5) @ rng.normal(0.0, 4.0, size=(2, side * side))))
    rate = np.exp(1.0 + (u - 0.5) @ rng.normal(size=(2, units * bins)))
    return xr.Dataset(
        {"spectrogram": (("syllable", "freq", "time"), spec.reshape(n, side, side).astype(np.float32)),
         "counts": (("syllable", "unit", "bin"), rng.poisson(rate).reshape(n, units, bins).astype(np.int32))},
        coords={"syllable": [f"s{i:03d}" for i in range(n)],
                "split": ("syllable", np.where(np.arange(n) % 4 == 3, "val", "train"))})


def outputs(model, ds: xr.Dataset, n: int = 6) -> dict[str, np.ndarray]:
    """Inputs (the first n syllables) and the old model's outputs on them, as float arrays."""
    x = {"audio": torch.from_numpy(ds["spectrogram"].values[:n, None].copy()),
         "neural": torch.from_numpy(ds["counts"].values[:n].astype(np.float32))}
    partial = {"audio": x["audio"], "neural": x["neural"].clone()}
    partial["neural"][0] = float("nan")  # sample 0 without its neural row: encoded from audio alone
    out = {"x_audio": x["audio"].numpy(), "x_neural": x["neural"].numpy(), "x_partial_neural": partial["neural"].numpy()}
    with torch.no_grad():
        for name, inputs in (("encode", x), ("encode_partial", partial)):
            post = model.encode(inputs)
            out[f"{name}_mean"], out[f"{name}_variance"] = post.mean.numpy(), post.variance.numpy()
        out["cross_neural_to_audio"] = model.cross_generate(x, ["neural"], "audio").numpy()
        out["cross_audio_to_neural"] = model.cross_generate(x, ["audio"], "neural").numpy()
        for m, rec in model.reconstruct(x).items():
            out[f"reconstruct_{m}"] = rec.numpy()
        for target, given in (("audio", ["neural"]), ("neural", [])):
            ll = model.log_likelihood(x, target, given, K=8, generator=torch.Generator().manual_seed(1))
            out[f"log_likelihood_{target}_given_{'_'.join(given) or 'none'}"] = ll.numpy()
        loss, terms = model.loss(x, generator=torch.Generator().manual_seed(0))
    out["loss"] = np.asarray(loss.item())
    out |= {f"loss_term_{k}": np.asarray(v) for k, v in terms.items()}
    return out


def main() -> None:
    torch.set_num_threads(1)
    # 4 units x 2 bins carry little, so fit warns that the neural posterior collapsed; expected here
    warnings.filterwarnings("ignore", message=".*posterior collapsed")
    ds = dataset()
    for kind in KINDS:
        with tempfile.TemporaryDirectory() as tmp:
            model = fit(ds, {**CONFIG, "kind": kind}, tmp, progress=False)
            model.eval()
            dst = HERE / kind
            dst.mkdir(exist_ok=True)
            for name in ("config.json", "weights.pt"):
                shutil.copyfile(Path(tmp) / name, dst / name)
        np.savez_compressed(dst / "outputs.npz", **outputs(model, ds))
    root = Path(mmneuro.__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (HERE / "made_with.json").write_text(json.dumps(
        {"commit": commit, "python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
         "config": CONFIG, "kinds": list(KINDS)}, indent=2) + "\n")


if __name__ == "__main__":
    main()

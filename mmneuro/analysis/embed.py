"""Everything that runs the trained model: inputs from dataset.nc, posteriors, decoder means.

The model is a ``mmneuro.models.MultimodalVAE`` (``encode(x, present)`` -> posterior with
``.mean``/``.variance``; ``decode_mean(z, name)`` -> the mean of p(x_name | z); ``cross_generate(x, src, dst)``).
Decoder means come from ``decode_mean``, not ``decode(z)[name].mean``: the same values without building
(and checking the arguments of) a torch.distributions object per call.
All calls run in batches under ``torch.no_grad`` and return numpy arrays.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from mmneuro.inputs import batches

CONDITIONINGS = {"joint": ("audio", "neural"), "audio": ("audio",), "neural": ("neural",)}
# decoder inputs per call: the demo's 64 × 64 audio decoder needs 10-30 % less CPU at 256 than at
# thousands (its working set then fits in the caches); each row is decoded on its own, so the values
# are those of one call over all rows (checked bit for bit on the demo models)
DECODE_ROWS = 256


def posterior_moments(model, x: dict[str, np.ndarray], given: tuple[str, ...], batch_size: int = 256):
    """Posterior mean and variance (N, D) given only the ``given`` modalities."""
    import torch

    means, variances = [], []
    n = len(next(iter(x.values())))
    with torch.no_grad():
        for sl in batches(n, batch_size):
            post = model.encode({m: torch.from_numpy(x[m][sl]) for m in given if m in x})
            means.append(post.mean.numpy())
            variances.append(post.variance.numpy())
    return np.concatenate(means), np.concatenate(variances)


def embeddings(model, ds: xr.Dataset, x: dict[str, np.ndarray], batch_size: int = 256) -> xr.Dataset:
    """Posterior ``mean`` and ``variance`` of every syllable under each conditioning the model supports:
    variables (conditioning, syllable, latent), with the dataset's per-syllable coordinates."""
    names = [c for c, mods in CONDITIONINGS.items() if all(m in model.modalities for m in mods)]
    moments = [posterior_moments(model, x, CONDITIONINGS[c], batch_size) for c in names]
    per_syllable = {k: v for k, v in ds.coords.items() if v.dims == ("syllable",)}
    return xr.Dataset(
        {"mean": (("conditioning", "syllable", "latent"), np.stack([m for m, _ in moments])),
         "variance": (("conditioning", "syllable", "latent"), np.stack([v for _, v in moments]))},
        coords={**per_syllable, "conditioning": names, "latent": np.arange(moments[0][0].shape[1])},
        attrs={"description": "posterior moments of z given the modalities named by `conditioning`"},
    )


def typical_latent(z: np.ndarray) -> np.ndarray:
    """The posterior mean (D,) of the most typical syllable: the row of z (N, D) nearest, in SD units,
    to the per-dimension median. Traversals start there: the mean of z can fall between clusters of
    syllables and decode to an empty spectrogram, a real syllable's latent decodes to a call."""
    z = np.asarray(z, dtype=np.float64)
    sd = z.std(0)
    dist = (((z - np.median(z, 0)) / np.where(sd > 0, sd, 1.0)) ** 2).sum(1)
    return z[int(np.argmin(dist))]


def decoder_mean(model, name: str, batch_size: int = 256):
    """A function z (K, D) numpy -> the decoder's mean of modality ``name`` (K, *shape), channel axis of
    a 1-channel image squeezed, so audio comes back as (K, F, T)."""
    import torch

    def run(z: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for sl in batches(len(z), batch_size):
                out.append(model.decode_mean(torch.from_numpy(np.asarray(z[sl], np.float32)), name).numpy())
        arr = np.concatenate(out)
        return arr[:, 0] if name == "audio" and arr.ndim == 4 else arr

    return run


def cross_generate(model, x: dict[str, np.ndarray], src: str, dst: str, batch_size: int = 256, *,
                   samples: int = 0, seed: int = 0) -> np.ndarray:
    """``dst`` generated from ``src`` only: (N, *shape); audio as (N, F, T). ``samples`` 0: the decoder
    mean at the posterior mean (model.cross_generate); > 0: the predictive mean
    E_q(z|src)[mean of p(dst | z)], averaged over that many posterior draws (seeded by ``seed``)."""
    import torch

    out = []
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sl in batches(len(x[src]), batch_size):
            xs = {src: torch.from_numpy(x[src][sl])}
            if samples:
                z = model.encode(xs).sample(samples, gen)  # (S, n, D)
                mean = torch.cat([model.decode_mean(part, dst) for part in z.reshape(-1, z.shape[-1]).split(DECODE_ROWS)])
                out.append(mean.reshape(samples, -1, *mean.shape[1:]).mean(0).numpy())
            else:
                out.append(model.cross_generate(xs, [src], dst).numpy())
    arr = np.concatenate(out)
    return arr[:, 0] if dst == "audio" and arr.ndim == 4 else arr

"""The model's view of a session: inputs, embeddings, and a modality predicted from the others.

Predictions are decoder means averaged over posterior samples z_k ~ q(z | given modalities), so
their spread (the standard deviation over k) is the model's uncertainty about the latent, not
the observation noise of the likelihood.
"""

from __future__ import annotations

import numpy as np

from mmneuro.inputs import batches


def sampled_prediction(model, x: dict[str, np.ndarray], given: tuple[str, ...], target: str, *, n_samples: int,
                       seed: int, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over ``n_samples`` posterior samples of the ``target`` decoder's
    mean given the ``given`` modalities: two (N, *target shape) arrays (audio as (N, F, T)).
    Deterministic for a seed: one generator draws every batch's samples in order."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    shape = tuple(model.experts[target].shape)
    n = len(next(iter(x.values())))
    means, sds = [], []
    with torch.no_grad():
        # the batch of posterior samples is split so one decoder call sees ~batch_size latents
        for sl in batches(n, max(1, batch_size // n_samples)):
            post = model.encode({m: torch.from_numpy(x[m][sl]) for m in given})
            z = post.sample(n_samples, generator)  # (K, n, D)
            decoded = model.decode_mean(z.reshape(-1, z.shape[-1]), target).reshape(n_samples, -1, *shape)
            means.append(decoded.mean(0).numpy())
            sds.append(decoded.std(0, correction=0).numpy())
    mean, sd = np.concatenate(means), np.concatenate(sds)
    if target == "audio":
        mean, sd = mean[:, 0], sd[:, 0]
    return mean, sd


def embeddings(model, x: dict[str, np.ndarray], batch_size: int = 256) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Posterior means and variances under every conditioning the session and model allow:
    (names, mean (C, N, D), variance (C, N, D)); conditioning names as in mmneuro.analysis.embed."""
    from mmneuro.analysis.embed import CONDITIONINGS, posterior_moments

    names = [c for c, mods in CONDITIONINGS.items() if all(m in x for m in mods)]
    moments = [posterior_moments(model, x, CONDITIONINGS[c], batch_size) for c in names]
    return names, np.stack([m for m, _ in moments]), np.stack([v for _, v in moments])

"""The synergy table: how much each modality's likelihood gains from conditioning on the other.

For m in {audio, neural} with the other modality n, on held-out syllables:
log p(x_m | x_m, x_n), log p(x_m | x_m) and log p(x_m | x_n), each the importance-sampled estimate
log (1/K) sum_k p(x_m | z_k), z_k ~ q(z | conditioning set) (the posterior stands in for
p(z | x_given), as in MultiVae's conditional NLL). ``MultimodalVAE.log_likelihood`` refuses a target
that is also given, so the estimate is formed here from the public ``encode``/``decode``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmneuro.analysis.embed import DECODE_ROWS


def conditional_log_likelihood(model, x: dict[str, np.ndarray], target: str, given: tuple[str, ...], *,
                               k: int, seed: int = 0, batch_size: int = 128, chunk: int = 50,
                               mean_draws: int = 0) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-syllable log p(x_target | x_given) in nats (N,), K posterior samples each, seeded.

    ``mean_draws`` > 0: also the predictive mean E_q(z|x_given)[mean of p(x_target | z)] over the first
    ``mean_draws`` of those samples (N, *shape of x_target), from the same decoder passes; returns
    (log-likelihoods, means)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    decoded = _decoded(model, target)
    n = len(x[target])
    out, means = [], []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            xt = torch.from_numpy(x[target][sl])
            post = model.encode({m: torch.from_numpy(x[m][sl]) for m in given})
            parts, mean_sum, draw = [], 0.0, 0
            for done in range(0, k, chunk):
                z = post.sample(min(chunk, k - done), generator)  # (k', N, D)
                # decode about DECODE_ROWS inputs per call: each z is decoded on its own, so the values
                # are those of one call over all k' × N, with a working set that fits in the caches
                step = max(1, DECODE_ROWS // len(xt))
                for zs in z.split(step):
                    log_prob, mean = decoded(zs, xt)
                    parts.append(log_prob)
                    if draw < mean_draws:
                        mean_sum = mean_sum + mean()[:mean_draws - draw].sum(0)
                    draw += len(zs)
            out.append((torch.logsumexp(torch.cat(parts), 0) - math.log(k)).numpy())
            if mean_draws:
                means.append((mean_sum / min(mean_draws, k)).numpy())
    log_lik = np.concatenate(out).astype(np.float64)
    return (log_lik, np.concatenate(means)) if mean_draws else log_lik


def _decoded(model, target: str):
    """(z (..., D), x_target) -> (log p(x_target | z) (...), a function giving the mean of p(x_target | z))
    from one decoder pass: a MultimodalVAE's likelihood in closed form (a fifth of the demo's audio terms
    went to building distributions), other models through ``decode``."""
    if hasattr(model, "decoded"):
        likelihood = model.experts[target].likelihood

        def closed_form(z, x):
            params = model.decoded(z, target)
            return likelihood.log_prob(params, x), lambda: likelihood.mean(params)
        return closed_form

    def distribution(z, x):
        d = model.decode(z, [target])[target]
        return d.log_prob(x), lambda: d.mean
    return distribution


def synergy_table(model, x: dict[str, np.ndarray], *, k: int, seed: int = 0, progress: bool = False,
                  mean_draws: int = 0) -> tuple[pd.DataFrame, dict]:
    """One row per target modality m: mean log-likelihoods (nats per syllable) and their standard
    errors over syllables, plus the seed's ordering check
    log p(x_m|x_m,x_n) >= log p(x_m|x_m) > log p(x_m|x_n) "up to Monte-Carlo error": the first
    holds if the paired mean difference is > -2 SE, the second if it is > +2 SE.

    Also returns {(m, given modality): predictive mean of x_m (N, *shape)} over the first ``mean_draws``
    posterior samples of the "self" and "cross" terms (empty if 0): what cross-generation reports,
    without decoding those samples again."""
    from tqdm import tqdm

    rows, means = [], {}
    pairs = [(m, n) for m in model.modalities for n in model.modalities if m != n]
    for m, n in tqdm(pairs, desc="synergy", disable=not progress, leave=False):
        ll = {}
        for key, given in (("joint", (m, n)), ("self", (m,)), ("cross", (n,))):
            if key == "joint" or not mean_draws:
                ll[key] = conditional_log_likelihood(model, x, m, given, k=k, seed=seed)
            else:
                ll[key], means[(m, given[0])] = conditional_log_likelihood(model, x, m, given, k=k, seed=seed,
                                                                           mean_draws=mean_draws)
        row = {"target": m, "other": n, "n_syllables": len(ll["joint"]), "K": k}
        for key, values in ll.items():
            row[f"log_p_{key}"] = float(values.mean())
            row[f"se_{key}"] = _se(values)
        d_js, d_sc = ll["joint"] - ll["self"], ll["self"] - ll["cross"]
        row["joint_minus_self"], row["self_minus_cross"] = float(d_js.mean()), float(d_sc.mean())
        row["ordered"] = bool(d_js.mean() > -2 * _se(d_js) and d_sc.mean() > 2 * _se(d_sc))
        rows.append(row)
    return pd.DataFrame(rows), means


def _se(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")

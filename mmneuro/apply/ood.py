"""Out-of-distribution check: does a new session look like the training data to the model?

Per syllable, with the modalities the session has: the reconstruction error of each modality
(negative log-likelihood per element under the model's own likelihood, at the posterior mean)
and KL(q(z | x) ‖ N(0, I)) of the posterior (moment-matched Gaussian for mixtures). Each score is
placed in the distribution of the same score on the training syllables, encoded from the same
modalities, as a percentile; syllables above ``flag_percentile`` in any score are flagged, and a
session is flagged when it has many more flagged syllables than the (100 - flag_percentile) %
expected by chance.
"""

from __future__ import annotations

import numpy as np


def syllable_scores(model, x: dict[str, np.ndarray], batch_size: int = 256) -> dict[str, np.ndarray]:
    """{"recon_<modality>": (N,), "kl": (N,)} given every modality in ``x`` (nats per element / nats)."""
    import torch

    from mmneuro.analysis.embed import posterior_moments
    from mmneuro.inputs import batches

    given = tuple(x)
    mean, var = posterior_moments(model, x, given, batch_size)
    # KL(N(mu, diag s^2) || N(0, I)) = 1/2 sum(s^2 + mu^2 - 1 - log s^2)  (Kingma & Welling 2014, App. B)
    scores = {f"recon_{m}": [] for m in given}
    with torch.no_grad():
        for sl in batches(len(mean), batch_size):
            z = torch.from_numpy(mean[sl])
            for m in given:
                expert = model.experts[m]
                target = torch.from_numpy(x[m][sl])
                log_p = expert.likelihood.log_prob(expert.decode(z), target)
                scores[f"recon_{m}"].append((-log_p / np.prod(expert.shape)).numpy())
    out = {k: np.concatenate(v).astype(np.float64) for k, v in scores.items()}
    out["kl"] = 0.5 * np.sum(var + mean**2 - 1.0 - np.log(var), axis=1).astype(np.float64)
    return out


def percentile_of(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Percentage of ``reference`` values at or below each value (the empirical CDF × 100)."""
    reference = np.sort(np.asarray(reference, dtype=np.float64))
    return 100.0 * np.searchsorted(reference, values, side="right") / max(len(reference), 1)


def session_summary(scores: dict[str, np.ndarray], reference: dict[str, np.ndarray], flag_percentile: float,
                    session_flag_fraction: float) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict]]:
    """Percentiles per score, the per-syllable flag (any score above ``flag_percentile``), and one
    summary row per score: median percentile, fraction of syllables above it, two-sample KS
    statistic and p-value against the reference, and whether the session is flagged on it
    (fraction above ``session_flag_fraction``)."""
    from scipy.stats import ks_2samp

    percentiles = {k: percentile_of(v, reference[k]) for k, v in scores.items()}
    flags = np.zeros(len(next(iter(scores.values()))), dtype=bool)
    rows = []
    for name, pct in percentiles.items():
        above = pct > flag_percentile
        flags |= above
        ks = ks_2samp(scores[name], reference[name]) if len(pct) else None
        rows.append({"score": name, "n_syllables": int(len(pct)), "n_reference": int(len(reference[name])),
                     "median": float(np.median(scores[name])) if len(pct) else np.nan,
                     "reference_median": float(np.median(reference[name])),
                     "median_percentile": float(np.median(pct)) if len(pct) else np.nan,
                     "fraction_flagged": float(above.mean()) if len(pct) else 0.0,
                     "ks_statistic": float(ks.statistic) if ks else np.nan,
                     "ks_pvalue": float(ks.pvalue) if ks else np.nan,
                     "session_flagged": bool(len(pct) and above.mean() > session_flag_fraction)})
    return percentiles, flags, rows

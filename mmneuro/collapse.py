"""The collapse alarm: what each unimodal posterior carries, read from metrics.csv rows.

No torch here: the report stage reads these without paying torch's import (~2.5 s CPU).
"""

from __future__ import annotations

import warnings

# a unimodal posterior carrying less than this (nats; the info_unimodal_<m> bound on I(x_m; z), see
# MultimodalVAE._unimodal_kl) has collapsed: the modality's encoder tells the latent almost nothing
COLLAPSE_NATS = 1.0


def posterior_kl(metrics: list[dict], term: str = "info_unimodal") -> dict[str, float]:
    """{modality: nats} of ``term`` (``info_unimodal`` or ``kl_unimodal``) at the best epoch (lowest
    validation loss; the training loss without a validation set), from metrics.csv rows (dicts);
    {} for rows without those columns."""
    prefix = "val_" if metrics and "val_loss" in metrics[0] else "train_"
    if not metrics or f"{prefix}loss" not in metrics[0]:
        return {}
    best = min(metrics, key=lambda row: float(row[f"{prefix}loss"]))
    start = f"{prefix}{term}_"
    return {k[len(start):]: float(v) for k, v in best.items() if k.startswith(start) and v not in ("", None)}


def warn_collapse(metrics: list[dict], where) -> dict[str, float]:
    """Warn (RuntimeWarning, printed on stderr) for every modality whose posterior carries < COLLAPSE_NATS;
    returns those {modality: nats}."""
    collapsed = {m: v for m, v in posterior_kl(metrics).items() if v < COLLAPSE_NATS}
    for m, v in collapsed.items():
        message = (f"{where}: the {m} posterior collapsed: it carries {v:.2f} nats about its input (best "
                   f"epoch; < {COLLAPSE_NATS:g}; metrics.csv: info_unimodal_{m}), so the latent ignores {m}")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return collapsed

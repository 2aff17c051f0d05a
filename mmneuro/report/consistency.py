"""The report's "Consistency across seeds" section of one model (templates/consistency.html), from
``RESULTS_DIR/consistency/<model>/summary.json`` written by ``mmneuro consistency``."""

from __future__ import annotations

import json
from pathlib import Path


def consistency_context(folder: Path) -> dict | None:
    """What templates/consistency.html shows for the consistency ``folder`` (None when there is none:
    the model was trained with one seed)."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    keys = ("runs", "split", "conditioning", "n_test", "n_units", "n_tuned", "active_latents", "clusters_k", "mean")
    return {**{k: s[k] for k in keys},
            "matrices": [(title, s[key]) for key, title in (
                ("r2", "R² of the linear map row → column (latents weighted by variance)"),
                ("r2_uniform", "R², plain mean over the column run's latents (CEBRA's averaging)"),
                ("ari", "adjusted Rand index of the tuned units' latent-profile clusters"),
                ("similarity_r", "correlation of the unit × unit similarity"))]}

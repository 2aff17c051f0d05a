"""``AnalysisResult``: every table of one model's analysis, in memory; ``write(folder)`` makes the folder.

Files (docs/analysis.md): embeddings.nc, latent_neuron.nc, clusters.csv, latent_band.csv,
cluster_band.csv, crosspred.csv, synergy.csv, factors_<name>.csv, scores.json (with a truth),
summary.json, figures/*.png.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.analysis.settings import AnalysisSettings


@dataclass
class Context:
    """What the figures and the truth scoring need beyond the tables (not written as such)."""

    model: object  # the MultimodalVAE
    model_dir: Path | None  # where its metrics.csv is (training curves), if known
    ds: xr.Dataset  # the whole dataset
    both: xr.Dataset  # its syllables with both modalities
    x_all: dict[str, np.ndarray]  # their model inputs
    data: object  # pipeline.Data: the analysed and training splits
    emb_split: xr.Dataset  # the embeddings of the analysed split
    clusters: dict  # neurons.cluster_profiles' fit with labels over all units
    traversal: object  # bands.traversal_frequencies' output, or None
    cross: dict  # {"table", "predictions" (N, U) per method, "images" (N, F, T) per method}
    factor_z: np.ndarray | None  # joint posterior means of the analysed split (factorised models)


@dataclass
class AnalysisResult:
    """The analysis of one model: tables as attributes; figures built on demand; ``write(folder)``."""

    embeddings: xr.Dataset  # posterior mean/variance (conditioning, syllable, latent)
    latent_neuron: xr.Dataset  # latent x unit correlations with p, q, and the encoding model's scores
    clusters: pd.DataFrame  # one row per unit: cluster, tuning test, band
    latent_band: pd.DataFrame
    cluster_band: pd.DataFrame
    crosspred: pd.DataFrame
    synergy: pd.DataFrame
    factors: dict[str, pd.DataFrame]  # factors_<name>.csv (factorised models; planted_probes with a truth)
    summary: dict
    settings: AnalysisSettings
    scores: dict = field(default_factory=dict)  # against the planted truth (scores.json); {} without one
    runtime_s: float = 0.0  # time the analysis took (summary.json adds the time to write it)
    context: Context | None = field(default=None, repr=False)

    def figures(self) -> dict:
        """{name: matplotlib Figure} of every figure the folder's figures/ gets (without the
        factorised models' traversal_<part>_<modality>.png, which ``write`` adds)."""
        from mmneuro.analysis.figures import analysis_figures

        return dict(analysis_figures(**self._figure_inputs()))

    def _figure_inputs(self) -> dict:
        c = self.context
        return {"model": c.model, "model_dir": c.model_dir, "data": c.data, "emb": c.emb_split,
                "settings": self.settings, "lat_neu": self.latent_neuron, "clusters": c.clusters,
                "traversal": c.traversal, "cross": c.cross, "both": c.both, "cluster_band": self.cluster_band}

    def write(self, folder) -> Path:
        """Write the analysis folder (built beside it and renamed into place, replacing an old one,
        so a failure leaves none); returns its path."""
        from mmneuro.analysis import factors, figures
        from mmneuro.io import atomic_path, write_netcdf

        started = time.perf_counter()
        out_dir = Path(folder)
        with atomic_path(out_dir) as tmp:
            tmp.mkdir()
            write_netcdf(self.embeddings, tmp / "embeddings.nc")
            write_netcdf(self.latent_neuron, tmp / "latent_neuron.nc")
            for name in ("clusters", "latent_band", "cluster_band", "crosspred", "synergy"):
                getattr(self, name).to_csv(tmp / f"{name}.csv", index=False)
            for name, table in self.factors.items():
                table.to_csv(tmp / f"factors_{name}.csv", index=False)
            if self.scores:
                (tmp / "scores.json").write_text(json.dumps(self.scores, indent=1, default=_json_default) + "\n")
            figures.write_all(tmp / "figures", **self._figure_inputs())
            if self.context.factor_z is not None:
                factors.traversal_figures(self.context.model, self.context.factor_z, tmp / "figures",
                                          batch_size=self.settings.batch_size)
            summary = {**self.summary, "runtime_s": round(self.runtime_s + time.perf_counter() - started, 1)}
            (tmp / "summary.json").write_text(json.dumps(summary, indent=1, default=_json_default) + "\n")
            if out_dir.exists():
                shutil.rmtree(out_dir)
        return out_dir


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")

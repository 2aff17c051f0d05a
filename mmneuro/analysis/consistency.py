"""Consistency across seeds: do models trained with other seeds find the same latent space and
group the neurons the same way?

``consistency(models, ds)`` takes several trained models (one per seed) and returns a
:class:`ConsistencyResult` (``.write(folder)``); ``consistency_folder`` does the same from and to
files (the CLI and the workflow). Two measures per pair of runs (docs/analysis.md):

- R² of a linear map between embeddings, CEBRA's consistency (Schneider, Lee & Mathis 2023;
  ``cebra.sklearn.metrics.consistency_score`` fits LinearRegression from embedding i to j and scores
  R² in-sample). Here the posterior means (``settings.conditioning``) are mapped with an affine
  least-squares fit on the training syllables and scored on the held-out ones (``settings.split``),
  in both directions; ``r2`` weights the target's latents by their variance, so collapsed latents
  (posterior means ~ constant) count for little, ``r2_uniform`` is CEBRA's plain mean over latents.
- Agreement of the model-based grouping of neurons: the tuned units (model-free, as in the analysis)
  clustered by their correlations with the *whitened* active latents (Ward, silhouette; as
  ``cluster_on=latents`` does with the raw latents), compared by the adjusted Rand index. Whitening
  makes the profiles' distances invariant to any invertible linear map of the latents (order, sign,
  scale, rotation), so two runs that differ by such a map agree exactly (ARI 1). The clusters of the
  analysis's default ``cluster_on=tuning`` come from raw counts and are the same for every seed by
  construction, so their ARI would say nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.analysis import embed, neurons
from mmneuro.analysis.settings import AnalysisSettings

# Burda et al. 2016 call a latent active when the variance of its posterior mean over the data
# exceeds 0.01 (the prior's is 1); here applied to the principal axes of the posterior means
ACTIVE_VARIANCE = 0.01


def linear_r2(source_train: np.ndarray, target_train: np.ndarray, source_test: np.ndarray,
              target_test: np.ndarray) -> np.ndarray:
    """R² per target column (D_t,) of an affine least-squares map source -> target fitted on the
    training rows and scored on the test rows (NaN for a constant target column)."""
    x = np.column_stack([np.ones(len(source_train)), source_train])
    coef, *_ = np.linalg.lstsq(x, target_train, rcond=None)
    pred = np.column_stack([np.ones(len(source_test)), source_test]) @ coef
    return neurons.r_squared(target_test, pred)


def pair_table(z_train: dict[str, np.ndarray], z_test: dict[str, np.ndarray], a: str, b: str) -> pd.DataFrame:
    """Both directions between runs ``a`` and ``b``: one row per target latent with its held-out
    variance and R² (the per-pair CSV)."""
    rows = []
    for src, dst in ((a, b), (b, a)):
        r2 = linear_r2(z_train[src], z_train[dst], z_test[src], z_test[dst])
        rows.append(pd.DataFrame({"source": src, "target": dst, "latent": np.arange(len(r2)),
                                  "target_variance": z_test[dst].var(0), "r2": r2}))
    return pd.concat(rows, ignore_index=True)


def summarise_r2(table: pd.DataFrame) -> tuple[float, float]:
    """Variance-weighted and uniform mean R² of one direction's rows (NaN latents, constant, left out)."""
    ok = table["r2"].notna()
    w = table.loc[ok, "target_variance"]
    weighted = float((table.loc[ok, "r2"] * w).sum() / w.sum()) if w.sum() > 0 else float("nan")
    return weighted, float(table.loc[ok, "r2"].mean()) if ok.any() else float("nan")


def whitened_profiles(z: np.ndarray, rates: np.ndarray, min_variance: float = ACTIVE_VARIANCE) -> np.ndarray:
    """Correlations (U, k) of each unit's rate with the k whitened principal axes of the latents z (N, D)
    whose variance exceeds ``min_variance``. Any invertible linear map of the active latents changes
    the profiles by an orthogonal rotation only, so distances between units do not change."""
    zc = z - z.mean(0)
    u, s, _ = np.linalg.svd(zc, full_matrices=False)
    active = s ** 2 / len(z) > min_variance
    white = u[:, active] * np.sqrt(len(z))  # unit variance, uncorrelated
    return neurons.correlation(white, rates).T


def cluster_agreement(labels: dict[str, np.ndarray]) -> pd.DataFrame:
    """Adjusted Rand index (Hubert & Arabie 1985) between every two runs' unit labels: (run, run)."""
    from sklearn.metrics import adjusted_rand_score

    names = list(labels)
    return pd.DataFrame([[adjusted_rand_score(labels[a], labels[b]) for b in names] for a in names],
                        index=names, columns=names)


def similarity_agreement(profiles: dict[str, np.ndarray]) -> pd.DataFrame:
    """Pearson r between runs of the unit x unit similarity (profiles @ profiles.T, the covariance of
    the rates' projections on the latents; invariant to linear maps of the latents), over unit pairs."""
    names = list(profiles)
    iu = np.triu_indices(len(next(iter(profiles.values()))), 1)
    sims = {k: (p @ p.T)[iu] for k, p in profiles.items()}
    return pd.DataFrame([[float(np.corrcoef(sims[a], sims[b])[0, 1]) if len(iu[0]) > 1 else float("nan")
                          for b in names] for a in names], index=names, columns=names)


@dataclass
class ConsistencyResult:
    """Pairwise tables and matrices (run x run) of several runs of one model; ``write(folder)``."""

    pairs: dict[tuple[str, str], pd.DataFrame]  # per pair: R² per direction and target latent
    r2: pd.DataFrame  # variance-weighted held-out R² of the map row -> column
    r2_uniform: pd.DataFrame  # the same, plain mean over the target's latents (CEBRA's averaging)
    ari: pd.DataFrame  # adjusted Rand index of the tuned units' latent-profile clusters
    similarity_r: pd.DataFrame  # correlation of the unit x unit similarity over unit pairs
    units: pd.DataFrame  # unit, tuned, cluster per run
    summary: dict

    def write(self, folder) -> Path:
        """r2_<a>_vs_<b>.csv per pair, units.csv and summary.json, written to a temporary folder
        renamed into place (a failure leaves none)."""
        from mmneuro.analysis.result import _json_default
        from mmneuro.io import atomic_path

        out = Path(folder)
        with atomic_path(out) as tmp:
            tmp.mkdir()
            for (a, b), table in self.pairs.items():
                table.to_csv(tmp / f"r2_{a}_vs_{b}.csv", index=False)
            self.units.to_csv(tmp / "units.csv", index=False)
            (tmp / "summary.json").write_text(json.dumps(self.summary, indent=1, default=_json_default) + "\n")
            if out.exists():
                shutil.rmtree(out)
        return out


def consistency(models: dict[str, object], ds: xr.Dataset, *, settings: AnalysisSettings | None = None,
                where: str = "dataset") -> ConsistencyResult:
    """Consistency of ``models`` ({run name: MultimodalVAE}, >= 2; e.g. one per seed) on ``ds`` (the
    dataset.nc layout): see the module docstring. Uses settings.split, conditioning, batch_size and
    the tuning and clustering settings of the analysis; writes nothing."""
    from mmneuro.analysis.pipeline import splits
    from mmneuro.errors import InputError
    from mmneuro.inputs import model_inputs

    settings = settings or AnalysisSettings()
    settings.check()
    if len(models) < 2:
        raise InputError(where, f"consistency needs at least two runs, got {len(models)}")
    part, train = splits(ds, settings, where)
    given = embed.CONDITIONINGS[settings.conditioning]
    z_train, z_test = {}, {}
    for name, model in models.items():
        model = getattr(model, "model_", model)
        if not set(given) <= set(model.modalities):
            raise InputError(where, f"run {name}: conditioning={settings.conditioning} needs the modalities "
                                    f"{', '.join(given)}; the model has {', '.join(model.modalities)}")
        z_train[name] = embed.posterior_moments(model, model_inputs(train, model, where), given, settings.batch_size)[0]
        z_test[name] = embed.posterior_moments(model, model_inputs(part, model, where), given, settings.batch_size)[0]
    names = list(models)
    pairs = {(a, b): pair_table(z_train, z_test, a, b) for a, b in combinations(names, 2)}
    r2 = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    r2_uniform = r2.copy()
    for table in pairs.values():
        for (src, dst), rows in table.groupby(["source", "target"], sort=False):
            r2.loc[src, dst], r2_uniform.loc[src, dst] = summarise_r2(rows)

    tuned, profiles, labels = unit_clusters(z_test, ds, part, settings)
    ari = cluster_agreement({k: v[tuned] for k, v in labels.items()})
    if tuned.sum() < 3:  # cluster_profiles puts fewer than 3 units in one cluster: nothing to compare
        ari.loc[:, :] = np.nan
    similarity = similarity_agreement({k: p[tuned] for k, p in profiles.items()})
    units = pd.DataFrame({"unit": part["unit"].values, "tuned": tuned, **{f"cluster_{k}": v for k, v in labels.items()}})

    def off_diagonal_mean(m: pd.DataFrame) -> float | None:
        values = m.values[~np.eye(len(m), dtype=bool)]
        return float(np.nanmean(values)) if np.isfinite(values).any() else None

    def matrix(m: pd.DataFrame) -> list[list[float | None]]:  # JSON has no NaN: null
        return [[float(v) if np.isfinite(v) else None for v in row] for row in m.values]

    summary = {
        "runs": names, "split": settings.split, "conditioning": settings.conditioning,
        "n_train": int(train.sizes["syllable"]), "n_test": int(part.sizes["syllable"]),
        "latent_dim": {k: int(z.shape[1]) for k, z in z_test.items()},
        "active_latents": {k: int(p.shape[1]) for k, p in profiles.items()},
        "n_units": int(len(tuned)), "n_tuned": int(tuned.sum()),
        "clusters_k": {k: int(len(np.unique(v[v >= 0]))) for k, v in labels.items()},
        "r2": matrix(r2), "r2_uniform": matrix(r2_uniform), "ari": matrix(ari), "similarity_r": matrix(similarity),
        "mean": {"r2": off_diagonal_mean(r2), "r2_uniform": off_diagonal_mean(r2_uniform),
                 "ari": off_diagonal_mean(ari), "similarity_r": off_diagonal_mean(similarity)},
        "definitions": {
            "r2": "R² of an affine map from the row run's posterior means to the column run's, fitted on the "
                  "training syllables, scored on the held-out split; the target's latents weighted by variance",
            "r2_uniform": "the same R², plain mean over the target's latents (CEBRA's averaging)",
            "ari": "adjusted Rand index of the tuned units' clusters (Ward, silhouette) on their correlations "
                   "with the whitened active latents (variance > 0.01), held-out split",
            "similarity_r": "Pearson r over unit pairs of the unit x unit similarity of those profiles",
        },
        "settings": settings.to_dict(),
    }
    return ConsistencyResult(pairs, r2, r2_uniform, ari, similarity, units, summary)


def unit_clusters(z: dict[str, np.ndarray], ds: xr.Dataset, part: xr.Dataset, settings: AnalysisSettings):
    """The tuned units (U,) bool, each run's whitened profiles (U, k) and cluster labels (U,) (-1:
    untuned). z: run -> posterior means (N, D) of ``part``'s syllables; which units are tuned is
    model-free (raw counts of every syllable of ``ds`` with both modalities), as in the analysis."""
    from mmneuro.analysis.pipeline import _both_modalities, cluster_units, unit_tuning
    from mmneuro.inputs import latency_s, window_counts

    tuned = unit_tuning(_both_modalities(ds), settings)["tuned"]
    counts, exposure, _ = window_counts(part, "total_counts", latency_s(ds))
    rates = counts / exposure[:, None]
    profiles = {k: whitened_profiles(v, rates) for k, v in z.items()}
    return tuned, profiles, {k: cluster_units(p, tuned, settings)["labels"] for k, p in profiles.items()}


def run_name(model_dir: Path) -> str:
    """A run's name: ``seed<k>`` from its config.json (the folder's name if it has none)."""
    try:
        return f"seed{json.loads((Path(model_dir) / 'config.json').read_text())['train']['seed']}"
    except (OSError, ValueError, KeyError, TypeError):
        return Path(model_dir).name


def consistency_folder(model_dirs, dataset_path, out_dir, *, settings: AnalysisSettings | None = None) -> Path:
    """:func:`consistency` of the models in ``model_dirs`` on ``dataset_path`` (dataset.nc), written
    to ``out_dir`` (for sessions sorted on their own: one per session, ``out_dir/sessions/<session>``,
    of the session's units). Runs are named by their training seed (their folder names if two seeds
    repeat)."""
    from mmneuro.analysis.multisession import session_model, session_view
    from mmneuro.dataset import recorded_units
    from mmneuro.io import atomic_path, read_netcdf
    from mmneuro.models import load_model

    names = [run_name(d) for d in model_dirs]
    if len(set(names)) < len(names):
        names = [f"{i}_{Path(d).name}" for i, d in enumerate(model_dirs)]
    models = {n: load_model(d) for n, d in zip(names, model_dirs)}
    ds = read_netcdf(dataset_path)

    def write(runs: dict, part: xr.Dataset, folder: Path) -> Path:
        result = consistency(runs, part, settings=settings, where=str(dataset_path))
        result.summary["model_dirs"] = {n: str(d) for n, d in zip(names, model_dirs)}
        return result.write(folder)

    if "unit_session" not in ds.coords:  # one sort
        return write(models, ds, out_dir)
    # sessions sorted on their own (docs/multisession.md): each session's units, as its analysis does
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        for session, units in recorded_units(ds).items():
            if len(units):
                write({n: session_model(m, units) for n, m in models.items()}, session_view(ds, session),
                      tmp / "sessions" / session)
        if out_dir.exists():
            shutil.rmtree(out_dir)
    return out_dir

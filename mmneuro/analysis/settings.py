"""Analysis settings: one dataclass with defaults; ``--set key=value`` overrides, unknown keys rejected."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mmneuro.errors import InputError


@dataclass(frozen=True)
class AnalysisSettings:
    """Every knob of ``mmneuro analyse`` (frequencies in Hz, times in s)."""

    seed: int = 0
    split: str = "test"  # held-out syllables every statistic is computed on
    conditioning: str = "audio"  # latents used for latent<->neuron statistics (audio: no circularity)
    # --- latent <-> neuron correlations
    null: str = "circular"  # circular shift (keeps within-bout autocorrelation) or permutation
    n_permutations: int = 1000
    fdr_q: float = 0.05
    # --- encoding model (rate ~ latents)
    encoding: str = "poisson"  # poisson GLM or ridge
    encoding_alpha: float = 1.0  # L2 penalty of the GLM / ridge on standardised latents
    cv_folds: int = 5
    # --- which units are tuned (raw counts of every syllable with both modalities, model-free)
    tuning_shifts: int = 1000  # circular shifts of each unit's counts against the syllables
    tuning_bins: int = 8  # quantile bins per syllable feature (the tuning curve's resolution)
    # --- clusters of tuned units
    cluster_on: str = "tuning"  # tuning: units' tuning curves over syllable features; latents: latent profiles
    profile_bins: int = 16  # quantile bins per feature of the tuning curves clustered
    n_clusters: int = 0  # 0: choose by the silhouette criterion over 2..max_clusters
    max_clusters: int = 8
    defining_latents: int = 2  # latents listed per cluster (largest |mean correlation|)
    # --- bands
    band_min_hz: float = 30_000.0
    band_max_hz: float = 110_000.0
    band_width_hz: float = 5_000.0
    traversal_sd: float = 2.5  # traversal range: latent mean +- this many SDs of the posterior means
    traversal_steps: int = 9
    # --- cross-prediction baselines
    pca_components: int = 20
    ridge_alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
    # the model's cross-generated spectrograms: the predictive mean E_q(z|src)[mean of p(x | z)] over
    # this many posterior draws (0: the decoder mean at the posterior mean), the synergy estimate's first
    # draws where it covers the same syllables (one decoder pass for both); docs/analysis.md
    predictive_samples: int = 32
    # PSTH R² of binned predictions (crosspred.psth_r2): syllables grouped, as NLB's trial conditions,
    # into this many quantile bins of this feature
    psth_feature: str = "mean_freq_hz"
    psth_groups: int = 5
    # --- synergy
    synergy_k: int = 50  # importance samples per syllable (decoding N·K spectrograms per term dominates the run time)
    synergy_max_syllables: int = 500
    # --- ground truth
    match_tolerance_s: float = 0.01  # detected vs planted syllable onsets
    batch_size: int = 256

    def replace(self, overrides: dict[str, str]) -> "AnalysisSettings":
        """A copy with ``overrides`` (strings from ``--set``) parsed to each field's type."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        values = {}
        for key, text in overrides.items():
            if key not in fields:
                raise InputError("--set", f"unknown analysis setting {key!r}; allowed: {', '.join(fields)}")
            values[key] = _parse(key, text, type(getattr(self, key)), getattr(self, key))
        new = dataclasses.replace(self, **values)
        new.check()
        return new

    def check(self) -> None:
        choices = {"null": ("circular", "permutation"), "cluster_on": ("tuning", "latents"), "encoding": ("poisson", "ridge"),
                   "conditioning": ("joint", "audio", "neural"), "split": ("train", "val", "test", "all")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise InputError("--set", f"{key}: {getattr(self, key)!r} is not one of {', '.join(allowed)}")
        positive = ("n_permutations", "tuning_shifts", "tuning_bins", "profile_bins", "cv_folds", "max_clusters", "defining_latents", "band_width_hz",
                    "traversal_steps", "pca_components", "psth_groups", "synergy_k", "synergy_max_syllables", "batch_size")
        for key in positive:
            if not getattr(self, key) > 0:
                raise InputError("--set", f"{key}: must be > 0 (got {getattr(self, key)!r})")
        if self.predictive_samples < 0:
            raise InputError("--set", f"predictive_samples: must be >= 0 (got {self.predictive_samples})")
        if not 0 < self.fdr_q < 1:
            raise InputError("--set", f"fdr_q: must be in (0, 1) (got {self.fdr_q})")
        if self.n_clusters < 0 or self.n_clusters == 1:
            raise InputError("--set", f"n_clusters: must be 0 (automatic) or >= 2 (got {self.n_clusters})")
        if self.band_max_hz <= self.band_min_hz + self.band_width_hz / 2:
            raise InputError("--set", "band_max_hz must exceed band_min_hz by at least half a band")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _parse(key: str, text: str, kind: type, default):
    try:
        if kind is tuple:
            return tuple(type(default[0])(v) for v in text.split(",") if v.strip())
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        return str(text)
    except ValueError:
        raise InputError("--set", f"{key}: {text!r} is not a valid {kind.__name__}") from None

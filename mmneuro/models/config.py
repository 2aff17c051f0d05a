"""What a model is made of, as plain data: one :class:`ExpertConfig` per modality and the
:class:`ModelConfig` that rebuilds a model (``mmneuro.models.build_model``) and travels with its
weights as JSON (``config.json``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from mmneuro.errors import InputError
from mmneuro.models.experts import CONV_CHANNELS

KINDS = ("mvae", "mmvae", "mopoe", "vae")


# The mixtures' neural encoder memorised the training syllables' spike noise (held-out neural ->
# audio 0.67-0.72 x ridge, median); dropping half its inputs in training: 0.91-0.92 x (4 families x
# 3 seeds). The MVAE's neural expert is not overfit but barely trained (its posterior is near the
# prior), and the same dropout made it worse, so it keeps none (docs/models.md, "Neural -> audio
# below ridge").
NEURAL_INPUT_DROPOUT = {"mmvae": 0.5, "mopoe": 0.5}

# Starting the MLP decoders' output bias at the data's mean, per kind (default: on). For the MVAE,
# with the 600-step floor, it costs more than it buys (4 families x 3 seeds): neural -> audio r worse
# in 11 of 12 runs (median 0.148 -> 0.121), audio -> audio worse in 10 of 12, held-out log p(x | x)
# worse in 9 of 12 for each modality, for audio -> neural r / oracle 0.790 -> 0.801 (median); its
# neural posterior keeps >= 9.4 nats without it. The mixtures keep it (audio -> neural r +0.02 to
# +0.08 in 4 runs each, other scores within noise; measured before the step floor).
OUTPUT_BIAS_INIT = {"mvae": False}
# The MVAE's default cross term: in training its audio-only ELBO also reconstructs the counts, so the
# neural decoder learns the posterior that audio -> neural reads. Under Wu & Goodman's objective (false)
# audio -> neural falls with steps once the neural expert dominates the joint posterior (multi-day
# shared model r_rate 0.930 -> 0.949). Single sessions (docs/models.md "The MVAE's audio -> neural
# falls with steps"): 2 x 360 s families, audio -> neural / oracle +0.019 to +0.069 (6 of 6 runs),
# audio -> audio -0.005 median; on 290-677 training syllables audio -> audio -0.012 median (8 runs).
MVAE_CROSS_RECONSTRUCTION = "neural"


@dataclass
class ExpertConfig:
    """One modality's expert. ``shape``: one observation's shape, e.g. [1, 128, 128] or [units, bins]."""

    shape: list[int]
    network: str = "mlp"  # "conv" (images) | "mlp"
    likelihood: str = "poisson"  # gaussian | laplace | poisson | negbinom
    likelihood_params: dict = field(default_factory=dict)  # e.g. {"scale": 0.1, "learn_scale": true}, {"link": "exp"}
    channels: list[int] = field(default_factory=lambda: list(CONV_CHANNELS))  # conv widths (experts.py)
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # mlp layers; conv: hidden[0] dense units
    out_activation: str | None = None  # None: sigmoid for conv Gaussian/Laplace, identity otherwise
    input_transform: str = "log1p"  # mlp encoder input: log1p (counts) | none
    norm: str = "none"  # conv encoder: "group" (GroupNorm, one group, after every convolution) | "none"
    input_dropout: float = 0.0  # mlp encoder: dropout on its input elements, in training only (experts.py)


def default_expert(name: str, shape: list[int], kind: str = "mvae") -> ExpertConfig:
    """Defaults: audio → conv (GroupNorm encoder) + Gaussian (σ = 0.1) on the [0, 1] image with an
    unbounded (identity) mean; anything else → MLP + Poisson, with ``NEURAL_INPUT_DROPOUT[kind]``."""
    if name == "audio":
        # identity, not sigmoid: most pixels of a syllable image are exactly 0 (below spec_lo_db),
        # and a sigmoid mean pushed there saturates and then draws nothing (docs/models.md
        # "Spectrogram representation": reconstruction r -0.00 with sigmoid, 0.54 without).
        return ExpertConfig(shape=list(shape), network="conv", likelihood="gaussian",
                            likelihood_params={"scale": 0.1, "learn_scale": False}, norm="group",
                            out_activation="identity")
    return ExpertConfig(shape=list(shape), network="mlp", likelihood="poisson", likelihood_params={"link": "softplus"},
                        input_dropout=NEURAL_INPUT_DROPOUT.get(kind, 0.0))


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; round-trips through JSON (:meth:`to_dict`/:meth:`from_dict`)."""

    kind: str = "mvae"
    latent_dim: int = 16
    modalities: dict[str, ExpertConfig] = field(default_factory=dict)  # order = modality order
    K: int = 1  # importance samples (MMVAE); K=4 trained 3.5x as long for no better cross-prediction
    iwae_variant: str = "loose"  # loose | tight
    dreg: bool = True
    beta: float = 1.0  # final KL weight
    beta_start: float = 0.0  # KL weight at the start of the warm-up
    beta_warmup_epochs: float = 0.0  # linear warm-up length (epochs); 0 = no annealing
    mvae_random_subsets: int = 0  # extra random subsets (size 2..M-1) per MVAE step
    # MVAE: true = every subset ELBO reconstructs every present modality (as MoPoE and the factorised
    # MVAE do). Default false: Wu & Goodman's objective, ELBO(x_a, x_n) + ELBO(x_a) + ELBO(x_n). Measured:
    # true lifts the neural posterior from 2.9-12.8 to 26-33 nats and cross-prediction, at a cost to audio
    # reconstruction and synergy (docs/models.md, "The MVAE's neural posterior"). A list of modalities:
    # only those are reconstructed from every subset; [neural] trains the neural decoder on q(z | audio)
    # too, which keeps audio -> neural from falling with steps where the neural expert dominates the
    # joint PoE (docs/models.md, "Audio -> neural falls with steps"). None = the default:
    # [neural] for an MVAE with a `neural` modality (MVAE_CROSS_RECONSTRUCTION), else false
    mvae_cross_reconstruction: bool | list[str] | None = None
    poe_prior_expert: bool = True  # MVAE: N(0, I) expert in every PoE
    mopoe_prior_expert: bool = False  # MoPoE: N(0, I) expert in the subset PoEs
    likelihood_weighting: str | dict = "rescale"  # rescale | none | {modality: weight}
    # fit starts each MLP decoder's output bias at the training data's mean (init_output_bias);
    # None = the kind's default, OUTPUT_BIAS_INIT (docs/models.md, "The MVAE's neural posterior")
    output_bias_init: bool | None = None
    # decode at most this many latents per decoder call (0: all at once). Same values; on CPU,
    # chunks of ~128 images keep allocations small enough to be reused instead of page-faulted
    # in every step (MMVAE K=10 audio decoding: 2.6 s → 1.7 s per step in benchmarks/).
    decode_chunk: int = 128
    preprocessing: dict = field(default_factory=dict)  # stored as-is (params the data was made with)
    # modality-private latent sizes: an int for every modality or {modality: size}; 0 = unfactorised.
    # latent_dim is then the size of the shared part; z = (shared, private of each modality in order).
    private_dims: int | dict = 0
    # weight γ of the shared-posterior agreement penalty (factorised models): γ · mean over modality
    # pairs of the symmetric KL between q(z_shared | x_m) and q(z_shared | x_m'). The ELBOs alone are
    # indifferent to whether a modality-specific factor sits in z_shared or in z_private; this makes
    # z_shared cost more wherever the modalities disagree (cf. mmJSD's alignment, Sutter et al. 2020).
    shared_alignment: float = 0.0

    def __post_init__(self):
        if self.output_bias_init is None:
            self.output_bias_init = OUTPUT_BIAS_INIT.get(self.kind, True)
        if self.mvae_cross_reconstruction is None:
            self.mvae_cross_reconstruction = ([MVAE_CROSS_RECONSTRUCTION] if self.kind == "mvae"
                                              and len(self.modalities) > 1
                                              and MVAE_CROSS_RECONSTRUCTION in self.modalities else False)
        self.modalities = {k: v if isinstance(v, ExpertConfig) else ExpertConfig(**v)
                           for k, v in self.modalities.items()}
        if self.kind not in KINDS:
            raise InputError("kind", f"unknown model kind {self.kind!r}; expected one of {KINDS}")
        if not self.modalities:
            raise InputError("modalities", "the model needs at least one modality")
        if self.kind == "vae" and len(self.modalities) != 1:
            raise InputError("modalities", f"kind 'vae' takes exactly one modality, got {list(self.modalities)}")
        if self.iwae_variant not in ("loose", "tight"):
            raise InputError("iwae_variant", f"expected 'loose' or 'tight', got {self.iwae_variant!r}")
        if int(self.K) < 1 or int(self.latent_dim) < 1:
            raise InputError("K/latent_dim", "must be positive integers")
        cross = self.mvae_cross_reconstruction
        if isinstance(cross, (list, tuple)) and set(cross) - set(self.modalities):
            raise InputError("mvae_cross_reconstruction", f"unknown modalities {sorted(set(cross) - set(self.modalities))}; "
                                                          f"the model has {list(self.modalities)}")
        sizes = self.private_sizes()
        if any(v < 0 for v in sizes.values()):
            raise InputError("private_dims", f"sizes must be >= 0, got {sizes}")

    def private_sizes(self) -> dict[str, int]:
        """{modality: private latent size} for every modality (0 where it has none)."""
        if isinstance(self.private_dims, dict):
            unknown = set(self.private_dims) - set(self.modalities)
            if unknown:
                raise InputError("private_dims", f"unknown modalities {sorted(unknown)}; the model has {list(self.modalities)}")
            return {m: int(self.private_dims.get(m, 0)) for m in self.modalities}
        return {m: int(self.private_dims) for m in self.modalities}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError("model config", f"unknown keys {sorted(unknown)}")
        return cls(**d)

    def beta_at(self, epoch: float) -> float:
        """KL weight after ``epoch`` (fractional) epochs: linear from beta_start to beta over the warm-up."""
        if self.beta_warmup_epochs <= 0:
            return float(self.beta)
        frac = min(1.0, max(0.0, epoch / self.beta_warmup_epochs))
        return float(self.beta_start + (self.beta - self.beta_start) * frac)

    def likelihood_weights(self) -> dict[str, float]:
        """Per-modality weights on log p(x_m | z). ``rescale`` (MultiVae's default, after Javaloy et
        al. 2022): w_m = max_m' |x_m'| / |x_m| with |x| the number of elements, so a 1000-count
        modality is not drowned by a 16384-pixel image."""
        if isinstance(self.likelihood_weighting, dict):
            return {m: float(self.likelihood_weighting.get(m, 1.0)) for m in self.modalities}
        if self.likelihood_weighting == "none":
            return {m: 1.0 for m in self.modalities}
        if self.likelihood_weighting == "rescale":
            sizes = {m: math.prod(e.shape) for m, e in self.modalities.items()}
            return {m: max(sizes.values()) / n for m, n in sizes.items()}
        raise InputError("likelihood_weighting", f"expected 'rescale', 'none' or a dict, got {self.likelihood_weighting!r}")

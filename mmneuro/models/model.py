"""The multimodal VAE: experts + fusion + objective chosen by ``ModelConfig.kind``.

kinds: ``mvae`` (PoE, Wu & Goodman 2018), ``mmvae`` (MoE + IWAE/DReG, Shi et al. 2019),
``mopoe`` (mixture of PoEs, Sutter et al. 2021), ``vae`` (one modality, plain ELBO).
``private_dims`` > 0 factorises z = (z_shared, z_private per modality), as in MMVAE+ (Palumbo et
al. 2023): only z_shared is fused; each modality's private part comes from its own encoder and is
drawn from the N(0, I) prior wherever that modality is not in the conditioning set.
Inputs are dicts name → tensor: ``"audio"`` (N, 1, F, T) in [0, 1], ``"neural"`` (N, U, B) or
(N, U) counts. A sample's modality is missing if it is absent from the dict, masked out by
``present``, or contains NaN.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mmneuro.errors import InputError
from mmneuro.io import atomic_path
from mmneuro.models.experts import CONV_CHANNELS, Expert
from mmneuro.models.fusion import (
    DiagGaussian,
    MixturePosterior,
    mixture_of_experts,
    mixture_of_products,
    nonempty_subsets,
    product_of_experts,
    standard_normal_log_prob,
)
from mmneuro.models.objectives import mixture_elbo, mixture_iwae, subset_elbos

KINDS = ("mvae", "mmvae", "mopoe", "vae")
CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"


# The mixtures' neural encoder memorised the training syllables' spike noise (held-out neural ->
# audio 0.67-0.72 x ridge, median); dropping half its inputs in training: 0.91-0.92 x (4 families x
# 3 seeds). The MVAE's neural expert is not overfit but barely trained (its posterior is near the
# prior), and the same dropout made it worse, so it keeps none (docs/models.md, "Neural -> audio
# below ridge").
NEURAL_INPUT_DROPOUT = {"mmvae": 0.5, "mopoe": 0.5}


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
    # reconstruction and synergy (docs/models.md, "The MVAE's neural posterior")
    mvae_cross_reconstruction: bool = False
    poe_prior_expert: bool = True  # MVAE: N(0, I) expert in every PoE
    mopoe_prior_expert: bool = False  # MoPoE: N(0, I) expert in the subset PoEs
    likelihood_weighting: str | dict = "rescale"  # rescale | none | {modality: weight}
    # fit starts each MLP decoder's output bias at the training data's mean (init_output_bias). Measured:
    # the MVAE's neural posterior 4.7 -> 14.4 nats (KL) on few_units, 3 seeds, at some cost to its
    # audio -> neural log-likelihood (docs/models.md, "The MVAE's neural posterior")
    output_bias_init: bool = True
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


@dataclass
class Posterior:
    """The posterior over the whole latent (``.mean``/``.variance`` (N, D_total)) and its parts.

    ``fused``: q(z_shared | present modalities) (mixture moments for MoE/MoPoE); ``unimodal``: each
    expert's q(z_shared | x_m); ``private`` (factorised models only): q(z_private_m | x_m) where
    x_m is present, the N(0, I) prior elsewhere. z = (shared, private of each modality in order).
    """

    fused: DiagGaussian | MixturePosterior
    unimodal: dict[str, DiagGaussian]
    present: dict[str, torch.Tensor]
    private: dict[str, DiagGaussian] = field(default_factory=dict)

    def _joined(self, shared: torch.Tensor, private: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([shared, *private], -1) if private else shared

    @property
    def mean(self) -> torch.Tensor:
        return self._joined(self.fused.mean, [q.mean for q in self.private.values()])

    @property
    def variance(self) -> torch.Tensor:
        return self._joined(self.fused.variance, [q.variance for q in self.private.values()])

    def sample(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """K samples (K, N, D_total) from the posterior (no gradient)."""
        with torch.no_grad():
            if isinstance(self.fused, MixturePosterior):
                shared = self.fused.sample(k, generator)
            else:
                shared = self.fused.rsample(k, generator)
            return self._joined(shared, [q.rsample(k, generator) for q in self.private.values()])

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z) for z (..., N, D_total): the fused shared density times the private densities."""
        d = self.fused.mean.shape[-1]
        out = self.fused.log_prob(z[..., :d])
        for q in self.private.values():
            width = q.mean.shape[-1]
            out = out + q.log_prob(z[..., d:d + width])
            d += width
        return out


class MultimodalVAE(nn.Module):
    """Experts per modality, fused and trained as ``config.kind`` says. Build with ``MultimodalVAE(config)``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.modalities = list(config.modalities)
        self.private_sizes = config.private_sizes()
        self.factorised = any(self.private_sizes.values())
        # each expert's encoder emits (shared, own private); its decoder reads the same pair
        self.experts = nn.ModuleDict({
            name: Expert(tuple(e.shape), config.latent_dim + self.private_sizes[name], e.network, e.likelihood,
                         e.likelihood_params, tuple(e.channels), tuple(e.hidden), e.out_activation,
                         e.input_transform, e.norm, e.input_dropout)
            for name, e in config.modalities.items()})
        self.weights = config.likelihood_weights()
        self.parts = self._latent_parts()

    def _latent_parts(self) -> dict[str, slice]:
        """Where each part sits in z: ``shared`` then ``<modality>_private`` (non-empty ones only)."""
        d = int(self.config.latent_dim)
        parts = {"shared": slice(0, d)}
        for name in self.modalities:
            size = self.private_sizes[name]
            if size:
                parts[f"{name}_private"] = slice(d, d + size)
                d += size
        return parts

    @property
    def total_latent_dim(self) -> int:
        """D_total = shared size + all private sizes (= latent_dim when unfactorised)."""
        return int(self.config.latent_dim) + sum(self.private_sizes.values())

    def _decoder_input(self, z: torch.Tensor, name: str) -> torch.Tensor:
        """The (shared, own private) slice of z (..., D_total) that modality ``name``'s decoder reads."""
        if not self.factorised:
            return z
        own = self.parts.get(f"{name}_private")
        return z[..., self.parts["shared"]] if own is None else torch.cat([z[..., self.parts["shared"]], z[..., own]], -1)

    @torch.no_grad()
    def init_output_bias(self, x: dict[str, torch.Tensor]) -> list[str]:
        """Start each MLP decoder's output bias at the mean of its modality over the samples of ``x``
        that have it (training data; :meth:`Expert.init_output_bias`), if ``output_bias_init``.
        Returns the modalities whose bias was set."""
        if not self.config.output_bias_init:
            return []
        xs, mask = self._prepare(x, None)
        done = []
        for i, name in enumerate(self.modalities):
            if mask[i].any() and self.experts[name].init_output_bias(xs[name][mask[i]]):
                done.append(name)
        return done

    # ---- inputs -------------------------------------------------------------------------
    def _prepare(self, x: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None):
        """→ (inputs with missing entries zero-filled, presence (M, N) bool)."""
        unknown = set(x) - set(self.modalities)
        if unknown:
            raise InputError("x", f"unknown modalities {sorted(unknown)}; the model has {self.modalities}")
        if not x:
            raise InputError("x", "no modality given")
        n = next(iter(x.values())).shape[0]
        device = next(self.parameters()).device
        xs, masks = {}, []
        for name in self.modalities:
            shape = self.experts[name].shape
            if name not in x:
                xs[name] = torch.zeros(n, *shape, device=device)
                masks.append(torch.zeros(n, dtype=torch.bool, device=device))
                continue
            value = x[name].to(device=device, dtype=torch.float32)
            if tuple(value.shape[1:]) != shape:
                raise InputError(name, f"expected shape (N, {', '.join(map(str, shape))}), got {tuple(value.shape)}")
            finite = torch.isfinite(value.flatten(1)).all(1)
            mask = finite if present is None or name not in present else finite & present[name].to(device).bool()
            xs[name] = torch.where(mask.view(-1, *[1] * len(shape)), value, 0.0)
            masks.append(mask)
        return xs, torch.stack(masks)

    # ---- encoding -----------------------------------------------------------------------
    def _encode_unimodal(self, xs: dict[str, torch.Tensor],
                         present: torch.Tensor) -> tuple[DiagGaussian, dict[str, DiagGaussian]]:
        """→ (q(z_shared | x_m) stacked (M, N, D_shared), {modality: q(z_private | x_m) (N, D_m)}).

        Each present modality's encoder runs once; a modality absent from the whole batch is skipped
        (its slots hold N(0, I), which the presence mask keeps out of every fusion).
        """
        d = int(self.config.latent_dim)
        means, logvars, private = [], [], {}
        for i, name in enumerate(self.modalities):
            if present[i].any():
                q = self.experts[name].encode(xs[name])
            else:
                zeros = torch.zeros(present.shape[1], d + self.private_sizes[name], device=present.device)
                q = DiagGaussian(zeros, zeros)
            means.append(q.mean[..., :d])
            logvars.append(q.logvar[..., :d])
            if self.private_sizes[name]:
                private[name] = q[..., d:]
        return DiagGaussian(torch.stack(means), torch.stack(logvars)), private

    def _with_private(self, shared: DiagGaussian, member: torch.Tensor,
                      private: dict[str, DiagGaussian]) -> DiagGaussian:
        """Extend q(z_shared) (..., N, D_shared) to the whole latent: modality m's private block is
        q(z_private | x_m) where ``member`` (..., M, N) is true, the N(0, I) prior elsewhere (so it adds
        nothing to the KL, and a decoder outside the conditioning set sees prior draws, MMVAE+)."""
        if not self.factorised:
            return shared
        blocks = [shared] + [_or_prior(private[name], member[..., i, :])
                             for i, name in enumerate(self.modalities) if name in private]
        return DiagGaussian(torch.cat([b.mean for b in blocks], -1), torch.cat([b.logvar for b in blocks], -1))

    def _component_members(self, subsets: list[tuple[int, ...]], present: torch.Tensor) -> torch.Tensor:
        """(C, M, N) bool: modality m is in component c's conditioning set and present for sample n."""
        member = torch.zeros(len(subsets), len(self.modalities), 1, dtype=torch.bool, device=present.device)
        for c, subset in enumerate(subsets):
            member[c, list(subset)] = True
        return member & present.unsqueeze(0)

    def _fuse(self, unimodal: DiagGaussian, present: torch.Tensor):
        kind = self.config.kind
        if kind == "mmvae":
            return mixture_of_experts(unimodal, present)
        if kind == "mopoe":
            return mixture_of_products(unimodal, present, self.config.mopoe_prior_expert)
        return product_of_experts(unimodal, present, self.config.poe_prior_expert)

    def encode(self, x: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> Posterior:
        """Fused posterior q(z | present modalities); ``.unimodal[name]`` gives each expert's q(z | x_m)."""
        xs, mask = self._prepare(x, present)
        unimodal, private = self._encode_unimodal(xs, mask)
        own = {m: _or_prior(q, mask[self.modalities.index(m)]) for m, q in private.items()}
        return Posterior(self._fuse(unimodal, mask), {m: unimodal[i] for i, m in enumerate(self.modalities)},
                         {m: mask[i] for i, m in enumerate(self.modalities)}, own)

    # ---- decoding -----------------------------------------------------------------------
    def decode(self, z: torch.Tensor, modalities: list[str] | None = None) -> dict[str, torch.distributions.Distribution]:
        """z (..., D_total) → p(x_m | z) for each of ``modalities`` (default: all), batch shape (...),
        event shape = the modality's shape. Each decoder reads only (z_shared, its own private part)."""
        names = self.modalities if modalities is None else list(modalities)
        self._check_names(names)
        return {m: self.experts[m].likelihood.distribution(self.experts[m].decode(self._decoder_input(z, m)))
                for m in names}

    def _decode_mean(self, z: torch.Tensor, name: str) -> torch.Tensor:
        expert = self.experts[name]
        return expert.likelihood.mean(expert.decode(self._decoder_input(z, name)))

    def _log_lik_fn(self, xs: dict[str, torch.Tensor], present: torch.Tensor, weighted: bool = True):
        """Build ``log_lik(z, targets)`` for the objectives (see mmneuro.models.objectives)."""

        def log_lik(z: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
            s = z.shape[0]
            rows = []
            for i, name in enumerate(self.modalities):
                expert = self.experts[name]
                sel = None if targets is None else targets[:, i].nonzero().flatten()
                if not present[i].any() or (sel is not None and sel.numel() == 0):
                    rows.append(torch.zeros(s, z.shape[1], device=z.device))
                    continue
                zs = self._decoder_input(z if sel is None else z[sel], name)
                lp = torch.cat([expert.likelihood.log_prob(expert.decode(chunk), xs[name])
                                for chunk in zs.split(self._slices_per_call(zs.shape[1]))])  # (S', N)
                lp = torch.where(present[i], lp * (self.weights[name] if weighted else 1.0), 0.0)
                if sel is not None and sel.numel() < s:
                    lp = torch.zeros(s, z.shape[1], device=z.device, dtype=lp.dtype).index_put((sel,), lp)
                rows.append(lp)
            return torch.stack(rows, 1)

        return log_lik

    def _slices_per_call(self, n: int) -> int:
        chunk = int(self.config.decode_chunk)
        return max(1, chunk // max(n, 1)) if chunk > 0 else 2**62

    # ---- training objective -------------------------------------------------------------
    def loss(self, x: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None, beta: float | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over samples of the per-sample loss for ``config.kind``; returns (loss, {term: mean value}).

        ``beta`` (KL weight, default ``config.beta``) applies to the ELBO objectives; IWAE (MMVAE) has none.
        """
        cfg = self.config
        beta = cfg.beta if beta is None else beta
        xs, mask = self._prepare(x, present)
        if not mask.any(0).all():
            raise InputError("x", "a sample has no modality present")
        unimodal, private = self._encode_unimodal(xs, mask)
        log_lik = self._log_lik_fn(xs, mask)
        m = len(self.modalities)
        complete = functools.partial(self._with_private, private=private) if self.factorised else None
        if cfg.kind in ("mvae", "vae"):
            subsets = [tuple(range(m))]
            if cfg.kind == "mvae" and m > 1:
                subsets += [(i,) for i in range(m)]
                middle = [s for s in nonempty_subsets(m) if 1 < len(s) < m]
                if self.training and cfg.mvae_random_subsets and middle:
                    rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=generator,
                                                           device=None if generator is None else generator.device)))
                    subsets += rng.sample(middle, min(cfg.mvae_random_subsets, len(middle)))
            per_sample, terms = subset_elbos(unimodal, mask, log_lik, subsets, beta, cfg.poe_prior_expert, generator,
                                             complete, cfg.mvae_cross_reconstruction)
            terms = {self._rename(k): v for k, v in terms.items()}
        elif cfg.kind == "mmvae":
            mixture = self._complete_mixture(mixture_of_experts(unimodal, mask), [(i,) for i in range(m)],
                                             mask, private)
            per_sample, terms = mixture_iwae(mixture, log_lik, int(cfg.K), cfg.iwae_variant, cfg.dreg, generator)
        else:
            mixture = self._complete_mixture(mixture_of_products(unimodal, mask, cfg.mopoe_prior_expert),
                                             nonempty_subsets(m), mask, private)
            per_sample, terms = mixture_elbo(mixture, log_lik, beta, generator)
        if self.factorised and cfg.shared_alignment > 0 and m > 1:
            align = shared_disagreement(unimodal, mask)
            per_sample = per_sample + cfg.shared_alignment * align
            terms["shared_disagreement"] = align
        summary = {k: float(v.detach().mean()) for k, v in terms.items()}
        summary |= self._unimodal_kl(unimodal, private, mask)
        return per_sample.mean(), summary

    @torch.no_grad()
    def unimodal_information(self, x: dict[str, torch.Tensor]) -> dict[str, float]:
        """``kl_unimodal_<m>`` and ``info_unimodal_<m>`` (nats, see :meth:`_unimodal_kl`) over the samples
        of ``x`` (moments of the aggregate posterior from all of them)."""
        xs, mask = self._prepare(x, None)
        unimodal, private = self._encode_unimodal(xs, mask)
        return self._unimodal_kl(unimodal, private, mask)

    def _unimodal_kl(self, unimodal: DiagGaussian, private: dict[str, DiagGaussian],
                     present: torch.Tensor) -> dict[str, float]:
        """How much the model's posterior given x_m alone carries, in nats, per modality m (means over
        the samples with x_m; the collapse alarm in mmneuro.train reads these):

        ``kl_unimodal_<m>``: KL(q(z | x_m) ‖ N(0, I)). q(z | x_m) is what ``encode({m: x_m})`` returns:
        m's expert fused with the N(0, I) expert where the kind's PoE has one (an expert at variance e^8
        then yields the prior: 0 nats), and m's private part.
        ``info_unimodal_<m>``: KL(q(z | x_m) ‖ r) with r the Gaussian matching the batch's aggregate
        posterior moments. E KL(q ‖ p) = I(x; z) + KL(q_agg ‖ p) (Hoffman & Johnson 2016); r drops the
        second part for a posterior that is merely offset from the prior (a constant q has 0 here
        but can have several nats of KL to the prior), so this is the closer bound on I(x_m; z).
        """
        prior = {"mmvae": False, "mopoe": self.config.mopoe_prior_expert}.get(self.config.kind,
                                                                            self.config.poe_prior_expert)
        out = {}
        with torch.no_grad():
            for i, name in enumerate(self.modalities):
                if not present[i].any():
                    continue
                q = product_of_experts(unimodal[i:i + 1], present[i:i + 1], prior)
                if name in private:
                    q = DiagGaussian(torch.cat([q.mean, private[name].mean], -1),
                                     torch.cat([q.logvar, private[name].logvar], -1))
                q = q[present[i]]
                mean = q.mean.mean(0)
                var = q.variance.mean(0) + q.mean.var(0, unbiased=False)
                info = 0.5 * ((q.variance + (q.mean - mean) ** 2) / var - 1.0 + var.log() - q.logvar).sum(-1)
                out[f"kl_unimodal_{name}"] = float(q.kl_to_standard_normal().mean())
                out[f"info_unimodal_{name}"] = float(info.mean())
        return out

    def _complete_mixture(self, mixture: MixturePosterior, subsets: list[tuple[int, ...]], present: torch.Tensor,
                          private: dict[str, DiagGaussian]) -> MixturePosterior:
        """Each mixture component over the whole latent: its own modalities' private posteriors, the
        prior for the others (MMVAE+'s q(z|x_m) q(w_m|x_m) r(w_n), with r the N(0, I) prior)."""
        if not self.factorised:
            return mixture
        members = self._component_members(subsets, present)
        return MixturePosterior(self._with_private(mixture.components, members, private), mixture.weights)

    def _rename(self, term: str) -> str:
        """'recon_0+1' → 'recon_audio+neural'."""
        kind, _, idx = term.partition("_")
        return f"{kind}_" + "+".join(self.modalities[int(i)] for i in idx.split("+"))

    # ---- generation and evaluation ------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Decoded means of every modality from the fused posterior mean."""
        z = self.encode(x, present).mean
        return {m: self._decode_mean(z, m) for m in self.modalities}

    @torch.no_grad()
    def cross_generate(self, x: dict[str, torch.Tensor], src: list[str], dst: str,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of p(x_dst | z) at the posterior mean given only the ``src`` modalities: (N, *shape_dst).

        Factorised models: z_shared is the fused posterior mean; dst's private part is its prior
        N(0, I) — its mean 0 by default, a draw per sample if ``generator`` is given (diverse samples,
        MMVAE+). The source's private parts never reach dst's decoder.
        """
        self._check_names(list(src) + [dst])
        post = self.encode({m: x[m] for m in src})
        z = post.mean
        own = self.parts.get(f"{dst}_private")
        if own is not None and dst not in src and generator is not None:
            z = z.clone()
            z[:, own] = torch.randn(z.shape[0], own.stop - own.start, generator=generator, device=z.device)
        return self._decode_mean(z, dst)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = True) -> dict[str, torch.Tensor]:
        """Joint generation: z ~ N(0, I), then each modality's decoded mean (or a draw if ``mean`` is False)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.total_latent_dim, generator=generator, device=device)
        if mean:
            return {m: self._decode_mean(z, m) for m in self.modalities}
        return {m: d.sample() for m, d in self.decode(z).items()}

    @torch.no_grad()
    def log_likelihood(self, x: dict[str, torch.Tensor], target: str, given: list[str] | tuple = (), K: int = 100,
                       chunk: int = 50, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-sampled log p(x_target | x_given) per sample (N,), unweighted likelihoods; NaN where
        x_target is missing.

        given non-empty: log (1/K) Σ_k p(x_t | z_k), z_k ~ q(z | x_given) (the fused posterior stands in
        for p(z | x_given), as in MultiVae's conditional NLL). given empty: the IWAE estimate
        log (1/K) Σ_k p(x_t | z_k) p(z_k) / q(z_k | x_t), z_k ~ q(z | x_t).
        """
        given = list(given)
        self._check_names(given + [target])
        if target in given:
            raise InputError("given", f"the target {target!r} cannot also be given")
        xs, mask = self._prepare({m: x[m] for m in [target] + given}, None)
        t = self.modalities.index(target)
        post = self.encode({m: x[m] for m in (given or [target])})
        log_lik = self._log_lik_fn(xs, mask, weighted=False)
        chunks = []
        for start in range(0, K, chunk):
            z = post.sample(min(chunk, K - start), generator)  # (k, N, D)
            lw = log_lik(z, None)[:, t]
            if not given:  # (other modalities' private parts are prior draws under both densities)
                lw = lw + standard_normal_log_prob(z) - post.log_prob(z)
            chunks.append(lw)
        estimate = torch.logsumexp(torch.cat(chunks), 0) - math.log(K)
        return torch.where(mask[t], estimate, math.nan)  # no estimate where the target is missing

    def _check_names(self, names: list[str]) -> None:
        for name in names:
            if name not in self.modalities:
                raise InputError(name, f"unknown modality; the model has {self.modalities}")

    # ---- persistence --------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> Path:
        """Write ``config.json`` and ``weights.pt`` (state dict) into out_dir, each atomically."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps({"model": self.config.to_dict()}, indent=2))
        with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
            torch.save(self.state_dict(), tmp)
        return out_dir


def shared_disagreement(unimodal: DiagGaussian, present: torch.Tensor) -> torch.Tensor:
    """Per sample (N,): mean over modality pairs present together of the symmetric KL
    ½[KL(q_i || q_j) + KL(q_j || q_i)] between unimodal shared posteriors (M, N, D); 0 without a pair.

    Symmetric KL of diagonal Gaussians: ¼ Σ_d [(σ²_i + (μ_i−μ_j)²)/σ²_j + (σ²_j + (μ_i−μ_j)²)/σ²_i − 2].
    """
    total = torch.zeros(present.shape[1], device=present.device)
    pairs = torch.zeros_like(total)
    for i in range(present.shape[0]):
        for j in range(i + 1, present.shape[0]):
            a, b = unimodal[i], unimodal[j]
            sq = (a.mean - b.mean) ** 2
            sym = 0.25 * ((a.variance + sq) * (-b.logvar).exp() + (b.variance + sq) * (-a.logvar).exp() - 2).sum(-1)
            both = present[i] & present[j]
            total = total + torch.where(both, sym, 0.0)
            pairs = pairs + both.to(total.dtype)
    return total / pairs.clamp_min(1.0)


def _or_prior(q: DiagGaussian, use: torch.Tensor) -> DiagGaussian:
    """q (..., N, D) where ``use`` (..., N) is true, N(0, I) (mean 0, log-variance 0) elsewhere."""
    use = use.unsqueeze(-1)
    return DiagGaussian(torch.where(use, q.mean, 0.0), torch.where(use, q.logvar, 0.0))


def load_model(out_dir: str | Path, map_location: str = "cpu") -> MultimodalVAE:
    """Rebuild a model from ``out_dir/config.json`` and load ``out_dir/weights.pt``."""
    out_dir = Path(out_dir)
    config_path, weights_path = out_dir / CONFIG_FILE, out_dir / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InputError(path, "file not found (not a trained model directory?)")
    try:
        config = ModelConfig.from_dict(json.loads(config_path.read_text())["model"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(config_path, f"not a model config ({err})") from err
    model = MultimodalVAE(config)
    model.load_state_dict(torch.load(weights_path, map_location=map_location, weights_only=True))
    model.eval()
    return model

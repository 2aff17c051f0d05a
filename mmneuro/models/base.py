"""The base of every multimodal VAE: experts per modality and everything the kinds share.

Subclasses (one per ``ModelConfig.kind``, see mmneuro.models.registry) choose the fusion and the
objective. ``private_dims`` > 0 factorises z = (z_shared, z_private per modality), as in MMVAE+
(Palumbo et al. 2023): only z_shared is fused; each modality's private part comes from its own
encoder and is drawn from the N(0, I) prior wherever that modality is not in the conditioning set.
Inputs are dicts name → tensor: ``"audio"`` (N, 1, F, T) in [0, 1], ``"neural"`` (N, U, B) or
(N, U) counts. A sample's modality is missing if it is absent from the dict, masked out by
``present``, or contains NaN.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from mmneuro.errors import InputError
from mmneuro.inputs import present_rows
from mmneuro.models.config import ModelConfig
from mmneuro.models.experts import Expert
from mmneuro.models.fusion import DiagGaussian, MixturePosterior, product_of_experts, standard_normal_log_prob
from mmneuro.models.objectives import LogLik, Terms, shared_disagreement
from mmneuro.models.posterior import Posterior, or_prior


class MultimodalVAE(nn.Module):
    """Experts per modality plus what every kind shares (inputs, encoding, decoding, evaluation).

    A subclass per kind (mmneuro.models.registry) says how posteriors are fused (:meth:`_fuse`) and
    what is trained (:meth:`_objective`). ``MultimodalVAE(config)`` builds the subclass of
    ``config.kind``, as :func:`mmneuro.models.build_model` does.
    """

    kind: ClassVar[str]  # the ModelConfig.kind a subclass implements

    def __new__(cls, config: ModelConfig | None = None, *args, **kwargs):
        if cls is MultimodalVAE and config is not None:  # (copy and pickle call __new__ without arguments)
            from mmneuro.models.registry import model_class

            cls = model_class(config.kind)
        return super().__new__(cls)

    def __init__(self, config: ModelConfig):
        if config.kind != self.kind:
            raise InputError("kind", f"{type(self).__name__} is the {self.kind!r} model; the config says {config.kind!r}")
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
        xs, mask, observed = self._prepare(x, None)
        done = []
        for i, name in enumerate(self.modalities):
            rows = xs[name][mask[i]]
            if name in observed:  # the mean over the samples that observed each element
                rows = torch.where(observed[name][mask[i]], rows, math.nan)
            if mask[i].any() and self.experts[name].init_output_bias(rows):
                done.append(name)
        return done

    # ---- inputs -------------------------------------------------------------------------
    def _prepare(self, x: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None):
        """→ (inputs with missing entries zero-filled, presence (M, N) bool, {modality: observed
        elements (N, *shape) bool} for modalities some of whose present samples have NaN elements).

        A neural sample with NaN for some units (units of another session's sort, docs/data_contract.md)
        is present with those units unobserved: zero-filled, they add nothing to the encoder's first
        linear layer (log1p(0) = 0), so its recorded units' columns act as a per-session read-in, and
        the likelihood sums only over observed units (a per-session read-out)."""
        unknown = set(x) - set(self.modalities)
        if unknown:
            raise InputError("x", f"unknown modalities {sorted(unknown)}; the model has {self.modalities}")
        if not x:
            raise InputError("x", "no modality given")
        n = next(iter(x.values())).shape[0]
        device = next(self.parameters()).device
        xs, masks, observed = {}, [], {}
        for name in self.modalities:
            shape = self.experts[name].shape
            if name not in x:
                xs[name] = torch.zeros(n, *shape, device=device)
                masks.append(torch.zeros(n, dtype=torch.bool, device=device))
                continue
            value = x[name].to(device=device, dtype=torch.float32)
            if tuple(value.shape[1:]) != shape:
                raise InputError(name, f"expected shape (N, {', '.join(map(str, shape))}), got {tuple(value.shape)}")
            elements = torch.isfinite(value)
            finite = present_rows(name, elements.flatten(1))
            mask = finite if present is None or name not in present else finite & present[name].to(device).bool()
            keep = mask.view(-1, *[1] * len(shape)) & elements
            xs[name] = torch.where(keep, value, 0.0)
            if not bool(keep[mask].all()):
                observed[name] = keep
            masks.append(mask)
        return xs, torch.stack(masks), observed

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
        blocks = [shared] + [or_prior(private[name], member[..., i, :])
                             for i, name in enumerate(self.modalities) if name in private]
        return DiagGaussian(torch.cat([b.mean for b in blocks], -1), torch.cat([b.logvar for b in blocks], -1))

    # ---- what a kind decides ------------------------------------------------------------
    @property
    def prior_expert(self) -> bool:
        """Whether the kind's products of experts include the N(0, I) expert."""
        raise NotImplementedError

    def _fuse(self, unimodal: DiagGaussian, present: torch.Tensor) -> DiagGaussian | MixturePosterior:
        """q(z_shared | present modalities) from the unimodal posteriors (M, N, D) and presence (M, N)."""
        raise NotImplementedError

    def _objective(self, unimodal: DiagGaussian, private: dict[str, DiagGaussian], present: torch.Tensor,
                   log_lik: LogLik, beta: float, generator: torch.Generator | None) -> tuple[torch.Tensor, Terms]:
        """The kind's per-sample loss (N,) and loss terms (see mmneuro.models.objectives)."""
        raise NotImplementedError

    def encode(self, x: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> Posterior:
        """Fused posterior q(z | present modalities); ``.unimodal[name]`` gives each expert's q(z | x_m)."""
        xs, mask, _ = self._prepare(x, present)
        unimodal, private = self._encode_unimodal(xs, mask)
        own = {m: or_prior(q, mask[self.modalities.index(m)]) for m, q in private.items()}
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

    def decoded(self, z: torch.Tensor, name: str) -> torch.Tensor:
        """The decoder's output for z (..., D_total): the parameters of p(x_name | z), as
        ``experts[name].likelihood`` takes them (its ``mean`` and ``log_prob`` from one decoder pass)."""
        self._check_names([name])
        return self.experts[name].decode(self._decoder_input(z, name))

    def decode_mean(self, z: torch.Tensor, name: str) -> torch.Tensor:
        """z (..., D_total) -> the mean of p(x_name | z), shape (..., *shape of x_name)."""
        params = self.decoded(z, name)  # checks the name
        return self.experts[name].likelihood.mean(params)

    def decode_log_prob(self, z: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
        """log p(x_name | z) (...) for z (..., D_total): the likelihood's closed form, as in training, the
        values of ``decode(z)[name].log_prob(x)`` up to float rounding without a torch.distributions
        object (its argument checks and image-sized temporaries)."""
        params = self.decoded(z, name)  # checks the name
        return self.experts[name].likelihood.log_prob(params, x)


    def _log_lik_fn(self, xs: dict[str, torch.Tensor], present: torch.Tensor, weighted: bool = True,
                    observed: dict[str, torch.Tensor] | None = None):
        """Build ``log_lik(z, targets)`` for the objectives (see mmneuro.models.objectives); a
        modality in ``observed`` sums its log-likelihood over the observed elements only."""
        observed = observed or {}

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
                lp = torch.cat([expert.likelihood.log_prob(expert.decode(chunk), xs[name], observed.get(name))
                                for chunk in zs.split(self._slices_per_call(zs.shape[1]))])  # (S', N)
                weight = self.weights[name] * self._observed_share(name, observed) if weighted else 1.0
                lp = torch.where(present[i], lp * weight, 0.0)
                if sel is not None and sel.numel() < s:
                    lp = torch.zeros(s, z.shape[1], device=z.device, dtype=lp.dtype).index_put((sel,), lp)
                rows.append(lp)
            return torch.stack(rows, 1)

        return log_lik

    def _observed_share(self, name: str, observed: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """With ``rescale`` weighting, |x_m| / observed elements per sample (N,), so that a session
        recording U_s of the union's U units weighs its counts as a model of its U_s units alone
        would (w_m = max |x_m'| / U_s, not / U, where the image is the largest modality); 1 otherwise."""
        if name not in observed or self.config.likelihood_weighting != "rescale":
            return 1.0
        seen = observed[name].flatten(1).sum(1).clamp(min=1)
        return observed[name][0].numel() / seen

    def _slices_per_call(self, n: int) -> int:
        chunk = int(self.config.decode_chunk)
        return max(1, chunk // max(n, 1)) if chunk > 0 else 2**62

    # ---- training objective -------------------------------------------------------------
    def loss(self, x: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None, beta: float | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over samples of the kind's per-sample loss; returns (loss, {term: mean value}).

        ``beta`` (KL weight, default ``config.beta``) applies to the ELBO objectives; IWAE (MMVAE) has none.
        """
        cfg = self.config
        beta = cfg.beta if beta is None else beta
        xs, mask, observed = self._prepare(x, present)
        if not mask.any(0).all():
            raise InputError("x", "a sample has no modality present")
        unimodal, private = self._encode_unimodal(xs, mask)
        log_lik = self._log_lik_fn(xs, mask, observed=observed)
        m = len(self.modalities)
        per_sample, terms = self._objective(unimodal, private, mask, log_lik, beta, generator)
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
        xs, mask, _ = self._prepare(x, None)
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
        prior = self.prior_expert
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

    # ---- generation and evaluation ------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Decoded means of every modality from the fused posterior mean."""
        z = self.encode(x, present).mean
        return {m: self.decode_mean(z, m) for m in self.modalities}

    @torch.no_grad()
    def predict(self, x: dict[str, torch.Tensor], given: list[str] | tuple | None = None, target: str | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of p(x_target | z) at the posterior mean given only the ``given`` modalities (default:
        all of ``x``): (N, *shape of x_target). ``target`` may be among ``given`` (a reconstruction).

        Factorised models: z_shared is the fused posterior mean; target's private part is its prior
        N(0, I) — its mean 0 by default, a draw per sample if ``generator`` is given (diverse samples,
        MMVAE+). The given modalities' private parts never reach target's decoder.
        """
        given = list(x if given is None else given)
        if target is None:
            raise InputError("target", f"name the modality to predict, one of {self.modalities}")
        if not given:
            raise InputError("given", "condition on at least one modality")
        self._check_names(given + [target])
        missing = [m for m in given if m not in x]
        if missing:
            raise InputError("given", f"{missing} not among the inputs {sorted(x)}")
        z = self.encode({m: x[m] for m in given}).mean
        own = self.parts.get(f"{target}_private")
        if own is not None and target not in given and generator is not None:
            z = z.clone()
            z[:, own] = torch.randn(z.shape[0], own.stop - own.start, generator=generator, device=z.device)
        return self.decode_mean(z, target)

    def cross_generate(self, x: dict[str, torch.Tensor], src: list[str], dst: str,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """:meth:`predict` of ``dst`` given ``src`` (the name mmneuro.analysis uses)."""
        return self.predict(x, src, dst, generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = True) -> dict[str, torch.Tensor]:
        """Joint generation: z ~ N(0, I), then each modality's decoded mean (or a draw if ``mean`` is False)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.total_latent_dim, generator=generator, device=device)
        if mean:
            return {m: self.decode_mean(z, m) for m in self.modalities}
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
        xs, mask, observed = self._prepare({m: x[m] for m in [target] + given}, None)
        t = self.modalities.index(target)
        post = self.encode({m: x[m] for m in (given or [target])})
        log_lik = self._log_lik_fn(xs, mask, weighted=False, observed=observed)
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
        """Write ``config.json`` and ``weights.pt`` into out_dir (:func:`mmneuro.models.persistence.save_model`)."""
        from mmneuro.models.persistence import save_model

        return save_model(self, out_dir)

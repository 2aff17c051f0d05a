"""MultimodalVAE API: config round-trip, encode/decode consistency, log-likelihood estimates, extremes."""

import json
import math

import numpy as np
import pytest
import torch

from mmneuro.errors import InputError
from mmneuro.models import ModelConfig, MultimodalVAE, default_expert, load_model
from mmneuro.models.experts import (
    LOGVAR_MAX,
    LOGVAR_MIN,
    ConvDecoder,
    ConvEncoder,
    OneChannelConvTranspose,
    TransposedConvByConv,
    bounded_logvar,
    mixed_precision,
    to_channels_last,
)
from mmneuro.models.fusion import product_of_experts

torch.set_num_threads(1)


def _model(kind="mvae", **kw):
    torch.manual_seed(0)
    audio = default_expert("audio", [1, 16, 16])
    audio.channels, audio.hidden = [4, 4], [16]
    neural = default_expert("neural", [5, 3])
    neural.hidden = [16]
    mods = {"audio": audio, "neural": neural} if kind != "vae" else {"neural": neural}
    return MultimodalVAE(ModelConfig(kind=kind, latent_dim=3, K=4, modalities=mods, **kw))


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"audio": torch.rand(n, 1, 16, 16, generator=g), "neural": torch.poisson(torch.full((n, 5, 3), 2.0), generator=g)}


def test_config_json_round_trip_and_save_load(tmp_path):
    model = _model("mopoe", likelihood_weighting={"audio": 1.0, "neural": 4.0}, preprocessing={"n_fft": 512})
    cfg = ModelConfig.from_dict(json.loads(json.dumps(model.config.to_dict())))
    assert cfg == model.config
    model.save(tmp_path)
    again = load_model(tmp_path)
    x = _batch()
    torch.testing.assert_close(again.encode(x).mean, model.encode(x).mean)
    assert again.config.preprocessing == {"n_fft": 512}
    with pytest.raises(InputError, match="config.json"):
        load_model(tmp_path / "nothing")


def test_likelihood_rescaling_weights():
    model = _model()
    assert model.weights == {"audio": 1.0, "neural": pytest.approx(256 / 15)}  # max |x| / |x_m|
    assert ModelConfig(modalities=model.config.modalities, likelihood_weighting="none").likelihood_weights() == {
        "audio": 1.0, "neural": 1.0}


def test_beta_warmup_is_linear():
    cfg = ModelConfig(modalities={"neural": default_expert("neural", [2])}, beta=2.0, beta_start=0.5,
                      beta_warmup_epochs=3)
    assert [cfg.beta_at(e) for e in (0, 1.5, 3, 10)] == [0.5, 1.25, 2.0, 2.0]


@pytest.mark.parametrize("kind", ["mvae", "mmvae", "mopoe"])
def test_encode_uses_the_fusion_of_the_present_unimodal_posteriors(kind):
    model = _model(kind)
    x = _batch()
    post = model.encode(x, present={"neural": torch.tensor([True, False, True, True, True, True])})
    assert post.mean.shape == (6, 3) and (post.variance > 0).all()
    q_audio = post.unimodal["audio"]
    # sample 1 has audio only: MoE/MoPoE reduce to the audio expert, PoE to audio × prior
    if kind == "mvae":
        expected = product_of_experts(q_audio[None], torch.ones(1, 6, dtype=torch.bool))
        torch.testing.assert_close(post.mean[1], expected.mean[1])
        torch.testing.assert_close(post.variance[1], expected.variance[1])
    else:
        torch.testing.assert_close(post.mean[1], q_audio.mean[1])
        torch.testing.assert_close(post.variance[1], q_audio.variance[1])
    # sample 0 has both: the fused posterior differs from either expert
    assert not torch.allclose(post.mean[0], q_audio.mean[0])


def test_decode_distributions_agree_with_log_likelihood_estimate():
    model = _model("mvae")
    x = _batch()
    est = model.log_likelihood(x, target="neural", given=["audio"], K=5, generator=torch.Generator().manual_seed(3))
    z = model.encode({"audio": x["audio"]}).sample(5, torch.Generator().manual_seed(3))
    lp = model.decode(z)["neural"].log_prob(x["neural"])  # (K, N)
    torch.testing.assert_close(est, torch.logsumexp(lp, 0) - math.log(5))
    # decoding only the target gives the same distribution and skips the other decoders
    only = model.decode(z, ["neural"])
    assert list(only) == ["neural"]
    torch.testing.assert_close(only["neural"].log_prob(x["neural"]), lp, rtol=0, atol=0)
    with pytest.raises(InputError, match="unknown modality"):
        model.decode(z, ["video"])


def test_unconditional_log_likelihood_is_an_iwae_bound_that_tightens_with_k():
    model = _model("mmvae")
    with torch.no_grad():  # a deliberately poor proposal q(z | x_audio), so more samples help visibly
        model.experts["audio"].head.linear.bias[:3] = 2.0
        model.experts["audio"].head.linear.bias[3:] = -3.0
    x = _batch(n=4)
    low = torch.stack([model.log_likelihood(x, "audio", K=1, generator=torch.Generator().manual_seed(s))
                       for s in range(30)]).mean(0)
    high = model.log_likelihood(x, "audio", K=300, generator=torch.Generator().manual_seed(0))
    assert (high > low).all()
    missing = model.log_likelihood({"audio": x["audio"], "neural": x["neural"] * math.nan}, "neural", ["audio"], K=3)
    assert torch.isnan(missing).all()


def test_cross_generate_sample_and_reconstruct_shapes_and_ranges():
    model = _model("mmvae")
    x = _batch()
    rate = model.cross_generate(x, src=["audio"], dst="neural")
    assert rate.shape == (6, 5, 3) and (rate > 0).all()
    image = model.cross_generate(x, src=["neural"], dst="audio")
    # the audio mean is unbounded (identity; default_expert says why): finite, the image's shape
    assert image.shape == x["audio"].shape and torch.isfinite(image).all()
    draws = model.sample(4, generator=torch.Generator().manual_seed(0), mean=False)
    assert draws["neural"].shape == (4, 5, 3) and torch.equal(draws["neural"], draws["neural"].round())
    assert set(model.reconstruct(x)) == {"audio", "neural"}
    with pytest.raises(InputError, match="unknown modality"):
        model.cross_generate(x, src=["video"], dst="audio")


def test_bounded_logvar_keeps_extremes_finite_and_is_identity_inside():
    raw = torch.tensor([-1e6, -50.0, -2.0, 0.0, 3.0, 50.0, 1e6], requires_grad=True)
    out = bounded_logvar(raw)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(raw.grad).all()
    assert LOGVAR_MIN <= float(out.detach().min()) and float(out.detach().max()) <= LOGVAR_MAX
    torch.testing.assert_close(out[2:5].detach(), raw[2:5].detach(), atol=1e-2, rtol=0)  # softplus tails: e^-5


@pytest.mark.parametrize("kind", ["mvae", "mmvae", "mopoe"])
def test_extreme_inputs_keep_loss_and_gradients_finite(kind):
    model = _model(kind)
    with torch.no_grad():  # push the encoders' log-variance outputs to ±50 and beyond
        model.experts["audio"].head.linear.bias[3:] = 50.0
        model.experts["neural"].head.linear.bias[3:] = -50.0
    x = _batch()
    x["neural"] = torch.zeros_like(x["neural"])  # all-zero counts
    for batch in (x, {"audio": x["audio"]}, {"neural": x["neural"]}):  # a modality missing for the whole batch
        model.zero_grad()
        loss, terms = model.loss(batch, generator=torch.Generator().manual_seed(0))
        loss.backward()
        assert math.isfinite(float(loss.detach())) and all(math.isfinite(v) for v in terms.values())
        for name, p in model.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_bad_inputs_are_input_errors():
    model = _model()
    with pytest.raises(InputError, match="audio"):
        model.encode({"audio": torch.rand(2, 1, 8, 8)})
    with pytest.raises(InputError, match="no modality present"):
        model.loss({"audio": torch.full((2, 1, 16, 16), math.nan)})
    with pytest.raises(InputError, match="kind"):
        ModelConfig(kind="jmvae", modalities={"neural": default_expert("neural", [2])})


def _contour_images(n, side=64, seed=0):
    """Spectrogram-like inputs as the demo's: a noise floor clipped at 0 (half the pixels 0, 90th
    percentile ~0.1) and one thin contour per image at level 0.1-0.3."""
    g = torch.Generator().manual_seed(seed)
    images = (0.08 * torch.randn(n, 1, side, side, generator=g)).clamp_min(0.0)
    for i in range(n):
        row, start = torch.randint(4, side - 4, (2,), generator=g).tolist()
        length = int(torch.randint(8, side // 2, (1,), generator=g))
        slope = float(torch.rand(1, generator=g)) - 0.5
        cols = torch.arange(start // 2, min(side, start // 2 + length))
        rows = (row + slope * (cols - cols[0])).round().long().clamp(0, side - 1)
        images[i, 0, rows, cols] = 0.1 + 0.2 * float(torch.rand(1, generator=g))
    return images


@pytest.mark.parametrize("name", ["audio", "neural"])
def test_every_network_carries_signal_at_initialisation(name):
    # PyTorch's default init left the conv expert dead: encoder means varied by 4e-5 across these
    # images, decoder outputs by 1e-4 across z, and training never recovered. With Kaiming init and
    # GroupNorm: 0.4 / 0.07. MLP (Poisson): PyTorch's init gave 0.010 / 0.05, Kaiming 0.11 / 0.66; the
    # bounds sit below both (PyTorch's MLP init was not dead); a 10× weaker network fails them.
    from mmneuro.models.experts import Expert

    shape = [1, 64, 64] if name == "audio" else [42, 25]
    cfg = default_expert(name, shape)
    enc_min, dec_min = (0.01, 0.02) if name == "audio" else (3e-3, 0.015)
    for seed in range(3):
        torch.manual_seed(seed)
        expert = Expert(tuple(shape), 16, cfg.network, cfg.likelihood, cfg.likelihood_params, tuple(cfg.channels),
                        tuple(cfg.hidden), norm=cfg.norm)
        x = _contour_images(128, seed=seed) if name == "audio" else torch.poisson(
            torch.full((128, *shape), 0.1), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            mean_sd = expert.encode(x).mean.std(0).mean()
            out_sd = expert.decode(torch.randn(128, 16, generator=torch.Generator().manual_seed(seed))).std(0).mean()
        assert mean_sd > enc_min, f"encoder mean barely depends on the input (SD {mean_sd:.2e})"
        assert out_sd > dec_min, f"decoder output barely depends on z (SD {out_sd:.2e})"


def _shared_factor_set(n=600, seed=0, dim=32, units=20):
    """Two shared factors s ~ N(0, I) drive both modalities: audio (N, 32) = tanh(0.7 s W) + N(0, 0.1²)
    (precise: it dominates the PoE), neural (N, 20) ~ Poisson(exp(−0.5 + 0.5 s U)) (≈ 0.7 spikes a unit)."""
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n, 2))
    audio = np.tanh(0.7 * s @ rng.standard_normal((2, dim))) + 0.1 * rng.standard_normal((n, dim))
    counts = rng.poisson(np.exp(-0.5 + 0.5 * s @ rng.standard_normal((2, units))))
    return {"audio": torch.tensor(audio, dtype=torch.float32), "neural": torch.tensor(counts, dtype=torch.float32)}


def test_mvae_cross_reconstruction_of_named_modalities_adds_only_their_terms():
    """``mvae_cross_reconstruction: [neural]``: in training the audio-only ELBO also draws the counts
    (as with ``true``: the same z, the same value), the neural-only ELBO still draws only the counts
    (as with ``false``); in evaluation (the validation loss early stopping reads) every term is
    Wu & Goodman's, as with ``false``; an unknown name is an InputError."""
    x = _batch()
    terms = {}
    for training in (True, False):
        for cross in (False, True, ["neural"]):
            model = _model(mvae_cross_reconstruction=cross).train(training)
            _, terms[training, str(cross)] = model.loss(x, generator=torch.Generator().manual_seed(0))
    named, both, own = terms[True, "['neural']"], terms[True, "True"], terms[True, "False"]
    assert named["recon_audio"] == both["recon_audio"] != own["recon_audio"]
    assert named["recon_neural"] == own["recon_neural"] != both["recon_neural"]
    assert named["recon_audio+neural"] == own["recon_audio+neural"]
    assert terms[False, "['neural']"] == terms[False, "False"] != terms[False, "True"]
    with pytest.raises(InputError, match="mvae_cross_reconstruction"):
        _model(mvae_cross_reconstruction=["spikes"])
    # unset: [neural] for the MVAE with a neural modality (the default), false for the other kinds
    assert _model().config.mvae_cross_reconstruction == ["neural"]
    assert _model("vae").config.mvae_cross_reconstruction is False
    assert _model("mopoe").config.mvae_cross_reconstruction is False


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mvae_cross_reconstruction_makes_the_neural_posterior_carry_the_shared_factors(seed):
    """The MVAE's neural expert is trained by the subset ELBOs it belongs to; in the joint PoE its
    precision share is small (≈ 2 % on the benchmark families, benchmarks/probe_mvae_posterior.py),
    so reconstructing only the counts from q(z | neural) (Wu & Goodman's objective, the default) left
    it near the prior. With ``mvae_cross_reconstruction: true`` the neural-only ELBO must also draw the
    audio. Power (this set, 20 epochs of 100-sample batches, seeds 0-2): info_unimodal_neural
    1.1 / 0.5 / 2.1 nats with ``false``, 5.4 / 5.4 / 5.8 with ``true``."""
    x = _shared_factor_set(seed=seed)
    audio = default_expert("audio", [32])
    audio.network, audio.hidden, audio.input_transform = "mlp", [32], "none"
    audio.likelihood, audio.likelihood_params = "gaussian", {"scale": 0.1}
    neural = default_expert("neural", [20])
    neural.hidden = [32]
    torch.manual_seed(seed)
    model = MultimodalVAE(ModelConfig(kind="mvae", latent_dim=4, modalities={"audio": audio, "neural": neural},
                                     mvae_cross_reconstruction=True))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(20):
        for idx in torch.randperm(600, generator=g).split(100):
            loss, _ = model.loss({m: v[idx] for m, v in x.items()}, generator=g)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    assert model.unimodal_information(x)["info_unimodal_neural"] > 4.0


@pytest.mark.parametrize("likelihood,params", [("poisson", {"link": "softplus"}), ("poisson", {"link": "exp"}),
                                               ("negbinom", {})])
def test_output_bias_init_makes_the_count_decoder_start_at_the_mean_rate(likelihood, params):
    # sparse counts as on the benchmark families (~0.08 spikes per unit and bin) and one silent unit;
    # PyTorch's init decodes ~0.69 (softplus(0)) or 1 (exp(0)) everywhere, 8-12x the data's rate
    counts = torch.poisson(torch.full((300, 42, 25), 0.08), generator=torch.Generator().manual_seed(0))
    counts[:, 0] = 0.0
    z = torch.randn(256, 16, generator=torch.Generator().manual_seed(1))
    rates = {}
    for init in (False, True):
        torch.manual_seed(0)
        neural = default_expert("neural", [42, 25])
        neural.likelihood, neural.likelihood_params = likelihood, params
        model = MultimodalVAE(ModelConfig(latent_dim=16, output_bias_init=init, modalities={
            "audio": _small_audio(), "neural": neural}))
        audio_before = [p.clone() for p in model.experts["audio"].parameters()]
        x = {"audio": torch.rand(300, 1, 16, 16), "neural": counts.clone()}
        x["neural"][:5, 1] = math.nan  # missing syllables are left out of the mean
        assert model.init_output_bias(x) == (["neural"] if init else [])
        for p, q in zip(audio_before, model.experts["audio"].parameters()):  # a conv decoder is left alone
            torch.testing.assert_close(p, q)
        with torch.no_grad():
            rates[init] = model.experts["neural"].likelihood.mean(model.experts["neural"].decode(z)).mean(0)
    expected = (counts[5:].sum(0) + 0.5) / 295
    assert float((rates[False] / expected).median()) > 6
    assert float((rates[True] / expected - 1).abs().median()) < 0.1
    torch.testing.assert_close(rates[True][0], expected[0], rtol=0.2, atol=0)  # silent unit: 0.5 / N


def _small_audio():
    audio = default_expert("audio", [1, 16, 16])
    audio.channels, audio.hidden = [4, 4], [16]
    return audio


def test_output_bias_init_of_a_gaussian_mlp_decoder_is_the_mean():
    audio = _small_audio()
    audio.network, audio.shape, audio.hidden, audio.input_transform = "mlp", [8], [16], "none"
    model = MultimodalVAE(ModelConfig(latent_dim=2, modalities={"audio": audio}, kind="vae"))
    x = torch.randn(50, 8) + 3.0
    assert model.init_output_bias({"audio": x}) == ["audio"]
    torch.testing.assert_close(model.experts["audio"].decoder.net[-3].bias, x.mean(0))


def _overfit_set(n, seed, units=20, bins=10, dim=32):
    """Two shared factors s drive audio (N, 32) = tanh(0.7 s W) + N(0, 0.1²) and counts (N, units,
    bins) ~ Poisson(exp(−1.5 + 0.5 s U)) (≈ 0.3 spikes per element); W, U fixed across calls, so sets
    drawn with different seeds are training and held-out syllables of one population."""
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n, 2))
    w, u = (np.random.default_rng(100 + i).standard_normal((2, k)) for i, k in enumerate((dim, units)))
    audio = np.tanh(0.7 * s @ w) + 0.1 * rng.standard_normal((n, dim))
    counts = rng.poisson(np.exp(-1.5 + 0.5 * s @ u)[:, :, None] * np.ones(bins))
    return {"audio": torch.tensor(audio, dtype=torch.float32), "neural": torch.tensor(counts, dtype=torch.float32)}


def _held_out_neural_to_audio_r2(kind, input_dropout, seed=0, n_train=150, epochs=40):
    train, test = _overfit_set(n_train, seed), _overfit_set(400, 1000 + seed)
    audio = default_expert("audio", [32])
    audio.network, audio.hidden, audio.input_transform = "mlp", [64], "none"
    audio.likelihood, audio.likelihood_params = "gaussian", {"scale": 0.1}
    neural = default_expert("neural", [20, 10], kind)
    neural.hidden = [64, 64]
    if input_dropout is not None:
        neural.input_dropout = input_dropout
    torch.manual_seed(seed)
    model = MultimodalVAE(ModelConfig(kind=kind, latent_dim=4, modalities={"audio": audio, "neural": neural}))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(n_train, generator=g).split(32):
            loss, _ = model.loss({m: v[idx] for m, v in train.items()}, generator=g)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    pred = model.cross_generate({"neural": test["neural"]}, ["neural"], "audio")
    a = test["audio"]
    return float(1 - ((a - pred) ** 2).sum() / ((a - a.mean(0)) ** 2).sum())


def test_neural_input_dropout_is_the_mixtures_default_and_off_in_eval():
    assert default_expert("neural", [20, 10], "mopoe").input_dropout == 0.5
    assert default_expert("neural", [20, 10], "mmvae").input_dropout == 0.5
    assert default_expert("neural", [20, 10], "mvae").input_dropout == 0.0
    neural = default_expert("neural", [20, 10], "mopoe")
    model = MultimodalVAE(ModelConfig(kind="mopoe", latent_dim=4, modalities={"neural": neural}))
    x = {"neural": _overfit_set(64, 0)["neural"]}
    model.train()
    assert not torch.equal(model.encode(x).mean, model.encode(x).mean)  # inputs dropped at random
    model.eval()
    assert torch.equal(model.encode(x).mean, model.encode(x).mean)
    # no parameters: a model saved without the dropout (older releases) loads into one with it
    plain = MultimodalVAE(ModelConfig(kind="mopoe", latent_dim=4, modalities={
        "neural": default_expert("neural", [20, 10], "mvae")}))
    model.load_state_dict(plain.state_dict())


def test_neural_input_dropout_stops_the_mixture_memorising_training_counts():
    """With 200 count elements and 150 training syllables the MoPoE's neural encoder memorises the
    training noise: audio generated from held-out counts, R² 0.757 / 0.753 / 0.771 (seeds 0-2;
    0.96 on the training syllables) without input dropout, 0.793 / 0.795 / 0.822 with the default
    (MMVAE: 0.746 / 0.746 / 0.762 vs 0.773 / 0.805 / 0.821)."""
    assert _held_out_neural_to_audio_r2("mopoe", None) > _held_out_neural_to_audio_r2("mopoe", 0.0) + 0.015


def test_one_channel_transposed_convolution_has_the_exact_gradient():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(3, 1, 4, 4, dtype=torch.float64), torch.randn(1, dtype=torch.float64)
    args = [t.requires_grad_() for t in (x, weight, bias)]
    assert torch.autograd.gradcheck(OneChannelConvTranspose.apply, args)
    reference = torch.nn.functional.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    torch.testing.assert_close(OneChannelConvTranspose.apply(*args), reference)


def test_transposed_convolution_by_convolution_has_the_exact_gradient():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(3, 2, 4, 4, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    args = [t.requires_grad_() for t in (x, weight, bias)]
    assert torch.autograd.gradcheck(lambda *a: TransposedConvByConv.apply(*a, (2, 2), (1, 1)), args)
    reference = torch.nn.functional.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    torch.testing.assert_close(TransposedConvByConv.apply(*args, (2, 2), (1, 1)), reference)


def test_conv_encoder_runs_a_one_channel_image_in_nhwc():
    """A one-channel image counts as channels_last already; the encoder must still get NHWC strides
    (else every convolution runs NCHW), with the values of the NCHW path up to float32 rounding."""
    torch.manual_seed(0)
    x = torch.rand(3, 1, 16, 16)
    assert x.is_contiguous(memory_format=torch.channels_last) and x.stride(1) != 1
    assert to_channels_last(x).stride(1) == 1 and torch.equal(to_channels_last(x), x)
    encoder = ConvEncoder((1, 16, 16), (4, 8), 8, norm="group")
    seen = []
    encoder.net[0].register_forward_hook(lambda module, inp, out: seen.append(out.stride(1)))
    torch.testing.assert_close(encoder(x, channels_last=True), encoder(x), rtol=1e-5, atol=1e-6)
    assert seen[0] == 1  # the first convolution's output is NHWC


def test_conv_decoder_channels_last_gives_the_same_values_and_gradients():
    """The training path (channels_last, the last layer by OneChannelConvTranspose) against plain
    nn.Sequential: equal up to float32 rounding (measured ≤ 1e-5 relative)."""
    torch.manual_seed(0)
    decoder, z = ConvDecoder((1, 32, 32), (4, 8), 16, 3), torch.randn(5, 3)
    results = []
    for channels_last in (False, True):
        decoder.zero_grad()
        out = decoder(z, channels_last=channels_last)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in decoder.parameters()]))
    (plain, plain_grads), (fast, fast_grads) = results
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(fast_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_mixed_precision_runs_the_conv_networks_in_bfloat16_and_the_rest_in_float32():
    """Inside mixed_precision the conv expert's layers compute in bfloat16 (the training path: NHWC, the
    transposed convolutions by TransposedConvByConv / OneChannelConvTranspose), the MLP expert, heads
    and loss in float32; the weights' gradients are float32 and point where float32's do (bfloat16 keeps
    8 mantissa bits: the loss moves by ~0.1 %, not 0 and not 1 %). On exit the model is float32 again."""
    model, x = _model("mvae"), _batch()
    dtypes = []
    hooks = [layer.register_forward_hook(lambda module, inp, out: dtypes.append((module.__class__.__name__, out.dtype)))
             for layer in (model.experts["audio"].encoder.net[0], model.experts["neural"].encoder.net[1])]

    def loss_and_grads():
        model.zero_grad()
        torch.manual_seed(1)
        loss = model.loss(x)[0]
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    ref_loss, ref_grad = loss_and_grads()
    with mixed_precision(model, torch.bfloat16):
        loss, grad = loss_and_grads()
    assert dtypes[2:] == [("Conv2d", torch.bfloat16), ("Linear", torch.float32)]
    assert loss.dtype == grad.dtype == torch.float32
    assert 1e-5 < abs(float(loss - ref_loss)) / abs(float(ref_loss)) < 1e-2
    assert float(torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0)) > 0.999
    torch.testing.assert_close(loss_and_grads(), (ref_loss, ref_grad), rtol=0, atol=0)
    for hook in hooks:
        hook.remove()

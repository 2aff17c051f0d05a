"""Experts: one encoder q(z | x_m) and one decoder p(x_m | z) per modality.

Encoders return a :class:`DiagGaussian` whose log-variance is softly bounded to
[LOGVAR_MIN, LOGVAR_MAX], so no encoder output can make σ² underflow to 0 or overflow.
Decoders accept z with any leading axes (..., D) and return (..., *shape).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from mmneuro.models.fusion import DiagGaussian
from mmneuro.models.likelihoods import make_likelihood

# conv expert widths, one stride-2 layer each. 16 (not 32) in the full-resolution layer: ~30 % less CPU
# per training step on the demo, scores within seed noise (docs/models.md "Conv widths and the demo's
# time budget")
CONV_CHANNELS = (16, 32, 64, 64)

# σ ∈ [e^-6, e^4] ≈ [0.0025, 55]: a posterior std far below any useful resolution of z is noise,
# and one far above the N(0, I) prior's scale is meaningless.
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0


def bounded_logvar(raw: torch.Tensor) -> torch.Tensor:
    """Soft clamp: ≈ identity inside [LOGVAR_MIN, LOGVAR_MAX], smooth saturation outside (never NaN)."""
    lower = LOGVAR_MIN + F.softplus(raw - LOGVAR_MIN)
    return LOGVAR_MAX - F.softplus(LOGVAR_MAX - lower)


def kaiming_init(module: nn.Module, output_layer: bool = True) -> nn.Module:
    """He et al. (2015) normal init with zero biases for every linear/conv layer: the ReLU gain √2 for
    layers feeding a SiLU; gain 1 (LeCun) for the last one if ``output_layer`` (it feeds a Gaussian
    head's outputs or an output activation, not a SiLU).

    PyTorch's default (uniform, gain 1/√3) shrinks activations by ~3× per SiLU layer: at init the
    conv audio expert's encoder means then varied by 1e-4 across syllables and its decoder output by
    1e-4 across z, and training never left that state (docs/models.md). A transposed convolution's
    fan-in is the taps that reach one output pixel: in_channels × kernel area / stride².
    """
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.ConvTranspose2d):
            fan_in = layer.in_channels * math.prod(layer.kernel_size) // math.prod(layer.stride)
        else:
            fan_in = layer.weight[0].numel()
        gain = 1.0 if output_layer and i == len(layers) - 1 else 2.0
        nn.init.normal_(layer.weight, 0.0, math.sqrt(gain / fan_in))
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return module


class GaussianHead(nn.Module):
    """Linear map from features to (mean, bounded log-variance) of a D-dimensional Gaussian."""

    def __init__(self, in_features: int, latent_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * latent_dim)

    def forward(self, h: torch.Tensor) -> DiagGaussian:
        mean, raw = self.linear(h).chunk(2, dim=-1)
        return DiagGaussian(mean, bounded_logvar(raw))


def _activation(name: str) -> nn.Module:
    return {"sigmoid": nn.Sigmoid(), "identity": nn.Identity(), "softplus": nn.Softplus()}[name]


def _norm(name: str, channels: int) -> list[nn.Module]:
    if name not in ("none", "group"):
        raise ValueError(f"unknown norm {name!r}; expected 'none' or 'group'")
    return [nn.GroupNorm(1, channels)] if name == "group" else []


def _conv_depth(shape: tuple[int, ...], channels: tuple[int, ...]) -> tuple[int, int]:
    _, f, t = shape
    n = len(channels)
    for size in (f, t):
        if size < 2**n or size & (size - 1):
            raise ValueError(f"conv expert needs power-of-two image sides >= {2**n}, got {shape}")
    return f >> n, t >> n


class ConvEncoder(nn.Module):
    """Image (N, C, F, T) → features; stride-2 4×4 convolutions halve each side per layer.

    ``norm="group"``: GroupNorm with one group (normalises each image's feature map over channels
    and pixels) after every convolution. Per sample, unlike AVA's batch norm, so batch statistics
    cannot mix syllables with the zero-filled inputs of missing modalities or vary with batch size.

    ``channels_last``: run the convolutions in NHWC layout (same values; on CPU oneDNN then skips
    its layout reorders, ~1.4× faster for the decoder at batch 320 here).
    """

    def __init__(self, shape: tuple[int, int, int], channels: tuple[int, ...], hidden: int, norm: str = "none"):
        super().__init__()
        f, t = _conv_depth(shape, channels)
        layers, c_in = [], shape[0]
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), *_norm(norm, c_out), nn.SiLU()]
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * f * t, hidden), nn.SiLU())
        self.out_features = hidden

    def forward(self, x, channels_last: bool = False):
        if channels_last:
            x = to_channels_last(x)
        return self.net(x)


class ConvDecoder(nn.Module):
    """z (N, D) → image (N, C, F, T), mirror of :class:`ConvEncoder` with transposed convolutions."""

    def __init__(self, shape: tuple[int, int, int], channels: tuple[int, ...], hidden: int, latent_dim: int,
                 out_activation: str = "sigmoid"):
        super().__init__()
        f, t = _conv_depth(shape, channels)
        rev = tuple(reversed(channels))
        self.dense = nn.Sequential(nn.Linear(latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, rev[0] * f * t),
                                   nn.SiLU(), nn.Unflatten(1, (rev[0], f, t)))
        layers: list[nn.Module] = []
        for c_in, c_out in zip(rev, rev[1:] + (shape[0],)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
        layers[-1] = _activation(out_activation)
        self.convs = nn.Sequential(*layers)

    def forward(self, z, channels_last: bool = False):
        h = self.dense(z)
        if not channels_last:
            return self.convs(h).contiguous()
        h = h.contiguous(memory_format=torch.channels_last)  # see ConvEncoder
        inference = not torch.is_grad_enabled()
        for layer in self.convs:  # the same values as self.convs(h), the last layer faster
            # (training on a GPU keeps cuDNN's kernel: not measured there)
            if (isinstance(layer, nn.ConvTranspose2d) and layer.out_channels == 1 and layer.stride == (2, 2)
                    and (inference or h.is_cpu)):
                h = OneChannelConvTranspose.apply(h, layer.weight, layer.bias)
            elif isinstance(layer, nn.ConvTranspose2d) and h.is_cpu and not inference:
                # training only: at inference nn.ConvTranspose2d is faster (256 latents, 1 thread:
                # decoder 0.27 s against 0.33 s by convolution kernels)
                h = TransposedConvByConv.apply(h, layer.weight, layer.bias, layer.stride, layer.padding)
            elif inference and isinstance(layer, nn.SiLU):  # in place: no autograd to keep the input for
                h = F.silu(h, inplace=True)
            else:
                h = layer(h)
        return h.contiguous()


def conv_transpose_one_channel(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 4×4, stride-2, padding-1 transposed convolution to one output channel (weight (C, 1, 4, 4),
    bias (1,)), x (N, C, H, W) channels_last -> (N, 1, 2H, 2W): one matmul of every pixel's C features
    with the 16 taps, then the 4 overlapping 2×2 blocks of taps added into place.

    oneDNN has no fast kernel for one output channel: its transposed convolution ran at ~2 GFLOP/s
    there, half of the demo decoder's time; this runs 3-5× faster (1 thread, batch 256; values equal
    up to float rounding, ~1e-6). Its own backward is slower than oneDNN's, hence
    :class:`OneChannelConvTranspose` in training.
    """
    n, c, h, w = x.shape
    # weight (C, 1, kh, kw) with kh = 2 * shift_h + phase_h: columns ordered (shift_h, shift_w, phase_h, phase_w)
    taps = weight.reshape(c, 2, 2, 2, 2).permute(0, 1, 3, 2, 4).reshape(c, 16)
    cols = (x.permute(0, 2, 3, 1).reshape(-1, c) @ taps).view(n, h, w, 2, 2, 2, 2)
    # output row 2i - 1 + kh = 2 (i + shift_h) + phase_h - 1: a (H+1, 2, W+1, 2) grid, cropped by one pixel
    out = x.new_zeros(n, h + 1, 2, w + 1, 2)
    for sh in (0, 1):
        for sw in (0, 1):
            out[:, sh:sh + h, :, sw:sw + w] += cols[:, :, :, sh, sw].permute(0, 1, 3, 2, 4)
    out = out.view(n, 2 * h + 2, 2 * w + 2)[:, 1:-1, 1:-1] + bias
    return out.unsqueeze(1)


class OneChannelConvTranspose(torch.autograd.Function):
    """:func:`conv_transpose_one_channel` forward, oneDNN's transposed-convolution backward (the
    exact gradient of the same map): 1.05× (MVAE) / 1.03× (MMVAE) less CPU per training step of
    benchmarks/bench_models.py at 1 thread, whose forward spent ~9 % of the MVAE step in this layer."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.bfloat16)  # x, weight, bias in one dtype
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return conv_transpose_one_channel(x, weight, bias)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        return torch.ops.aten.convolution_backward(grad, x, weight, [1], [2, 2], [1, 1], [1, 1], True, [0, 0], 1,
                                                   list(ctx.needs_input_grad))


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) in NHWC strides. ``x.contiguous(memory_format=torch.channels_last)`` returns a
    one-channel image as it is (NCHW-contiguous counts as channels_last when C = 1, with C's stride
    H·W), and a convolution given it keeps NCHW: the whole conv encoder then ran in NCHW, 1.10× the
    CPU time of NHWC (forward + backward, batch 64, 1 thread; docs/models.md "Benchmark"). Off the
    CPU the layout stays as it was (NCHW for one channel): not measured there."""
    if x.dim() != 4 or x.stride(1) == 1 or not x.is_cpu:
        return x.contiguous(memory_format=torch.channels_last)
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


class TransposedConvByConv(torch.autograd.Function):
    """A transposed convolution (NHWC, groups 1, dilation 1, no output padding) by the kernels of the
    convolution it transposes: forward = that convolution's input gradient, backward = the
    convolution itself (input gradient) and its weight gradient with the roles of input and output
    swapped. The same oneDNN calls nn.ConvTranspose2d makes, less its deconvolution wrapper: equal
    outputs and input/weight gradients (bitwise on CPU here; the bias gradient sums in another
    order), 1.08-1.13× less CPU for the decoder's 64→64, 64→32, 32→16 layers (forward + backward,
    batch 128, 1 thread)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.bfloat16)
    def forward(ctx, x, weight, bias, stride, padding):
        n, _, h, w = x.shape
        k_h, k_w = weight.shape[2:]
        size = (n, weight.shape[1], (h - 1) * stride[0] - 2 * padding[0] + k_h,
                (w - 1) * stride[1] - 2 * padding[1] + k_w)
        # only the convolution input's shape is read, not its values (an expanded scalar, no image-sized
        # temporary); an NHWC weight makes oneDNN compute in NHWC, as for x
        shell = x.new_empty(()).expand(size)
        out = torch.ops.aten.convolution_backward(x, shell, weight.contiguous(memory_format=torch.channels_last),
                                                  None, list(stride), list(padding), [1, 1], False, [0, 0], 1,
                                                  [True, False, False])[0]
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return out if bias is None else out.add_(bias.view(1, -1, 1, 1))

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = F.conv2d(grad, weight, None, ctx.stride, ctx.padding) if need_x else None
        grad_w = None
        if need_w:
            grad_w = torch.ops.aten.convolution_backward(x, grad, weight, None, list(ctx.stride), list(ctx.padding),
                                                         [1, 1], False, [0, 0], 1, [False, True, False])[1]
        return grad_x, grad_w, grad.sum((0, 2, 3)) if need_b else None, None, None


class MLPEncoder(nn.Module):
    """Counts (N, *shape) → features; ``log1p`` input transform tames heavy-tailed spike counts.

    ``input_dropout``: in training, each input element is zeroed with this probability (the rest
    scaled by 1 / (1 − p); off in ``eval()``). With more count elements (units × bins) than training
    syllables, the encoder otherwise maps each training syllable's Poisson noise to its own posterior:
    the MoPoE / MMVAE neural posteriors then predicted the audio posterior mean with R² 0.67–0.73 on
    training syllables and ≈ 0 on held-out ones (docs/models.md, "Neural → audio below ridge").
    """

    def __init__(self, shape: tuple[int, ...], hidden: tuple[int, ...], input_transform: str = "log1p",
                 input_dropout: float = 0.0):
        super().__init__()
        layers, n_in = [nn.Flatten()], math.prod(shape)
        for n_out in hidden:
            layers += [nn.Linear(n_in, n_out), nn.SiLU()]
            n_in = n_out
        self.net = nn.Sequential(*layers)
        self.input_dropout = nn.Dropout(input_dropout)  # outside `net`: no parameters, older weights still load
        self.input_transform = input_transform
        self.out_features = n_in

    def forward(self, x, channels_last: bool = False):
        if self.input_transform == "log1p":
            x = torch.log1p(x.clamp_min(0.0))
        return self.net(self.input_dropout(x))


class MLPDecoder(nn.Module):
    """z (N, D) → (N, *shape) decoder output (a rate pre-activation or a Gaussian mean)."""

    def __init__(self, shape: tuple[int, ...], hidden: tuple[int, ...], latent_dim: int,
                 out_activation: str = "identity"):
        super().__init__()
        layers, n_in = [], latent_dim
        for n_out in reversed(hidden):
            layers += [nn.Linear(n_in, n_out), nn.SiLU()]
            n_in = n_out
        layers += [nn.Linear(n_in, math.prod(shape)), _activation(out_activation), nn.Unflatten(1, tuple(shape))]
        self.net = nn.Sequential(*layers)

    def forward(self, z, channels_last: bool = False):
        return self.net(z)

    def set_output_bias(self, bias: torch.Tensor) -> bool:
        """Set the last layer's bias (flattened ``shape``) where the output activation is the identity;
        returns whether it did (under another activation the bias would not be the output)."""
        last, activation = self.net[-3], self.net[-2]
        if not isinstance(activation, nn.Identity):
            return False
        last.bias.copy_(bias.flatten())
        return True


@contextmanager
def mixed_precision(model: nn.Module, dtype: torch.dtype | None):
    """Inside: the conv experts' encoder and decoder networks of ``model`` compute in ``dtype``
    (torch.autocast: convolutions and matmuls in ``dtype``, weights kept in float32) and return
    float32; Gaussian heads, fusion, likelihoods and losses stay float32. ``None`` or float32: no change."""
    experts = [m for m in model.modules() if isinstance(m, Expert) and m.channels_last]
    before = [expert.autocast_dtype for expert in experts]
    for expert in experts:
        expert.autocast_dtype = None if dtype in (None, torch.float32) else dtype
    try:
        yield
    finally:
        for expert, previous in zip(experts, before):
            expert.autocast_dtype = previous


class Expert(nn.Module):
    """Encoder + Gaussian head + decoder + likelihood for one modality with observations of ``shape``.

    ``settings`` (see :class:`mmneuro.models.config.ExpertConfig`): network ``"conv"`` or ``"mlp"``,
    ``channels``/``hidden`` sizes, ``likelihood`` name and ``likelihood_params``, ``out_activation``,
    ``norm`` (conv encoder only: ``"group"`` or ``"none"``), ``input_dropout`` (MLP encoder only).
    """

    def __init__(self, shape: tuple[int, ...], latent_dim: int, network: str, likelihood: str,
                 likelihood_params: dict | None = None, channels: tuple[int, ...] = CONV_CHANNELS,
                 hidden: tuple[int, ...] = (256, 256), out_activation: str | None = None,
                 input_transform: str = "log1p", norm: str = "none", input_dropout: float = 0.0):
        super().__init__()
        self.shape = tuple(shape)
        self.channels_last = network == "conv"
        self.autocast_dtype: torch.dtype | None = None  # see mixed_precision
        if out_activation is None:
            # Poisson/NB links apply their own positivity; Gaussian/Laplace means of [0, 1] images use a sigmoid
            out_activation = "sigmoid" if (network == "conv" and likelihood in ("gaussian", "laplace")) else "identity"
        if network == "conv":
            self.encoder = ConvEncoder(self.shape, tuple(channels), hidden[0], norm)
            self.decoder = ConvDecoder(self.shape, tuple(channels), hidden[0], latent_dim, out_activation)
        elif network == "mlp":
            self.encoder = MLPEncoder(self.shape, tuple(hidden), input_transform, input_dropout)
            self.decoder = MLPDecoder(self.shape, tuple(hidden), latent_dim, out_activation)
        else:
            raise ValueError(f"unknown expert network {network!r}; expected 'conv' or 'mlp'")
        self.head = GaussianHead(self.encoder.out_features, latent_dim)
        if network == "conv":  # MLP experts keep PyTorch's init (measured in docs/models.md)
            kaiming_init(self.encoder, output_layer=False)  # its features feed a SiLU
            kaiming_init(self.head)
            kaiming_init(self.decoder)
        self.likelihood = make_likelihood(likelihood, self.shape, likelihood_params)

    def encode(self, x: torch.Tensor) -> DiagGaussian:
        """x (N, *shape) → q(z | x) with mean/logvar (N, D)."""
        return self.head(self._network(self.encoder, x))

    def _network(self, network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``network(x)``, in ``self.autocast_dtype`` (float32 out) when :func:`mixed_precision` set it."""
        if self.autocast_dtype is None:
            return network(x, channels_last=self.channels_last)
        with torch.autocast(x.device.type, dtype=self.autocast_dtype):
            return network(x, channels_last=self.channels_last).float()

    @torch.no_grad()
    def init_output_bias(self, x: torch.Tensor) -> bool:
        """Set an MLP decoder's last bias so that it decodes the mean of the samples x (N, *shape)
        wherever the rest of its output is 0 (``Likelihood.output_for_data``); returns whether it did
        (conv decoders, whose bias is per channel, and output activations other than identity are
        left alone).

        Adam moves a bias by ~lr per step, so from 0 a Poisson rate of 0.08 spikes per bin (softplus⁻¹
        −2.4) would take ~2400 steps at lr 1e-3; meanwhile the hidden layers learn the baseline instead
        of what z says (docs/models.md, "The MVAE's neural posterior").
        """
        if not isinstance(self.decoder, MLPDecoder):
            return False
        return self.decoder.set_output_bias(self.likelihood.output_for_data(x.float()))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) → decoder output (..., *shape); leading axes are flattened into one batch."""
        lead = z.shape[:-1]
        out = self._network(self.decoder, z.reshape(-1, z.shape[-1]))
        return out.reshape(*lead, *self.shape)

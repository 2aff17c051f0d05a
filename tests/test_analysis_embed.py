"""The analysis' cross-generation: decoding at the posterior mean vs the predictive mean."""

from types import SimpleNamespace

import numpy as np

from mmneuro.analysis.embed import cross_generate


class SquareModel:
    """q(z | x) = N(x, 1) per dimension, mean of p(audio | z) = z² as a 1-channel image: the
    predictive mean is x² + 1, the decode at the posterior mean x²."""

    def encode(self, x):
        import torch

        from mmneuro.models.fusion import DiagGaussian

        mean = x["neural"]
        return SimpleNamespace(mean=mean, sample=lambda k, gen: DiagGaussian(mean, torch.zeros_like(mean)).rsample(k, gen))

    def decode_mean(self, z, name):
        return (z ** 2)[:, None, :, None]

    def cross_generate(self, x, src, dst):
        return self.decode_mean(self.encode(x).mean, dst)


def test_predictive_mean_averages_decoded_posterior_draws():
    x = {"neural": np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)}
    model = SquareModel()
    at_mean = cross_generate(model, x, "neural", "audio", batch_size=16)
    np.testing.assert_allclose(at_mean, x["neural"][:, :, None] ** 2, rtol=1e-6)
    draws = cross_generate(model, x, "neural", "audio", batch_size=16, samples=400, seed=0)
    assert draws.shape == at_mean.shape == (50, 3, 1)
    # E[z²] = x² + 1; the Monte Carlo error of 400 draws is ~ sqrt((4x² + 2) / 400)
    assert abs(float((draws - at_mean).mean()) - 1.0) < 0.05
    np.testing.assert_array_equal(draws, cross_generate(model, x, "neural", "audio", batch_size=16, samples=400, seed=0))
    assert not np.array_equal(draws, cross_generate(model, x, "neural", "audio", batch_size=16, samples=400, seed=1))

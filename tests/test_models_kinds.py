"""One model class per kind: the registry, MultimodalVAE(config) building the kind's class, the
fusion each class makes, and the public predict / decode_mean."""

import inspect
import re

import pytest
import torch

from mmneuro.errors import InputError
from mmneuro.models import (
    KINDS,
    MODEL_CLASSES,
    MixturePosterior,
    MMVAEModel,
    ModelConfig,
    MoPoEModel,
    MultimodalVAE,
    MVAEModel,
    VAEModel,
    build_model,
    default_expert,
)
from mmneuro.models.fusion import DiagGaussian

torch.set_num_threads(1)


def _config(kind="mvae", **kw):
    neural = default_expert("neural", [5, 3], kind)
    neural.hidden = [8]
    mods = {"neural": neural} if kind == "vae" else {"audio": default_expert("audio", [1, 8, 8]), "neural": neural}
    if kind != "vae":
        mods["audio"].channels, mods["audio"].hidden = [4, 4], [8]
    return ModelConfig(kind=kind, latent_dim=2, modalities=mods, **kw)


def _batch(n=5):
    g = torch.Generator().manual_seed(0)
    return {"audio": torch.rand(n, 1, 8, 8, generator=g), "neural": torch.poisson(torch.full((n, 5, 3), 2.0), generator=g)}


@pytest.mark.parametrize("kind, cls", [("mvae", MVAEModel), ("mmvae", MMVAEModel), ("mopoe", MoPoEModel),
                                       ("vae", VAEModel)])
def test_every_kind_builds_its_own_class(kind, cls):
    assert set(MODEL_CLASSES) == set(KINDS)
    assert type(build_model(_config(kind))) is cls
    assert type(MultimodalVAE(_config(kind))) is cls  # the base-class constructor picks the kind's class
    torch.manual_seed(0)
    a = build_model(_config(kind))
    torch.manual_seed(0)
    b = MultimodalVAE(_config(kind))
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_a_class_refuses_another_kinds_config():
    with pytest.raises(InputError, match="MVAEModel is the 'mvae' model; the config says 'mopoe'"):
        MVAEModel(_config("mopoe"))


@pytest.mark.parametrize("kind, mixture, prior_key", [("mvae", False, "poe_prior_expert"), ("mmvae", True, None),
                                                      ("mopoe", True, "mopoe_prior_expert")])
def test_the_class_chooses_fusion_and_prior_expert(kind, mixture, prior_key):
    model = build_model(_config(kind))
    fused = model.encode(_batch()).fused
    assert isinstance(fused, MixturePosterior) is mixture and (mixture or isinstance(fused, DiagGaussian))
    for value in (True, False):
        flipped = build_model(_config(kind, **({prior_key: value} if prior_key else {})))
        assert flipped.prior_expert is (value if prior_key else False)


def test_loss_and_fusion_have_no_kind_branches():
    methods = [MultimodalVAE.loss, MultimodalVAE._unimodal_kl, MultimodalVAE.encode]
    methods += [getattr(cls, name) for cls in MODEL_CLASSES.values() for name in ("_fuse", "_objective")]
    for method in methods:
        assert not re.search(r"\.kind\b|\bkind\s*(==|!=|in\b)", inspect.getsource(method)), method.__qualname__


@pytest.mark.parametrize("kind", ["mvae", "mopoe"])
def test_predict_is_the_decoded_mean_of_the_given_modalities_posterior(kind):
    model = build_model(_config(kind)).eval()
    x = _batch()
    with torch.no_grad():
        expected = model.decode_mean(model.encode({"neural": x["neural"]}).mean, "audio")
    torch.testing.assert_close(model.predict(x, given=["neural"], target="audio"), expected, rtol=0, atol=0)
    assert model.predict(x, target="neural").shape == (5, 5, 3)  # given: every input
    torch.testing.assert_close(model.cross_generate(x, ["neural"], "audio"), expected, rtol=0, atol=0)


def test_predict_and_decode_mean_reject_bad_names():
    model = build_model(_config("mvae"))
    x = _batch()
    with pytest.raises(InputError, match="target"):
        model.predict(x, given=["neural"])
    with pytest.raises(InputError, match="unknown modality"):
        model.predict(x, given=["neural"], target="lfp")
    with pytest.raises(InputError, match="given"):
        model.predict(x, given=[], target="audio")
    with pytest.raises(InputError, match="not among the inputs"):
        model.predict({"audio": x["audio"]}, given=["neural"], target="audio")
    with pytest.raises(InputError, match="unknown modality"):
        model.decode_mean(torch.zeros(1, 2), "lfp")


def test_a_model_copies_and_pickles_as_its_class():
    import copy
    import pickle

    model = build_model(_config("mopoe")).eval()  # (training mode drops neural inputs at random)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert type(twin) is MoPoEModel
        torch.testing.assert_close(twin.encode(_batch()).mean, model.encode(_batch()).mean, rtol=0, atol=0)

"""Models saved by an earlier release keep loading and computing the same numbers.

tests/data/old_models/<kind>/ holds what the code before the models were split by kind (commit
6d3cfbe) wrote for a tiny trained model, and outputs.npz what that code computed from stored
inputs (tests/data/old_models/make.py says how). Today's ``load_model`` must rebuild the kind's
class and reproduce every stored output.

Tolerance: relative 1e-6 (absolute 1e-6 near zero), not bit equality, so the fixture keeps passing
on CPUs and torch builds whose float32 kernels round differently in the last bits (on the machine
that made it the match is exact). Any change in what the code computes — a layer, an activation,
a fusion or loss formula, a weight not loaded — moves these numbers by orders of magnitude more.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mmneuro.estimator
from mmneuro.models import MMVAEModel, MoPoEModel, MVAEModel, load_model

torch.set_num_threads(1)

FIXTURE = Path(__file__).parent / "data" / "old_models"
CLASSES = {"mvae": MVAEModel, "mmvae": MMVAEModel, "mopoe": MoPoEModel}
ESTIMATORS = {"mvae": mmneuro.estimator.MVAE, "mmvae": mmneuro.estimator.MMVAE, "mopoe": mmneuro.estimator.MoPoE}


def recompute(model, stored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Today's model's outputs under the names (and generator seeds) of make.py's ``outputs``."""
    x = {"audio": torch.from_numpy(stored["x_audio"]), "neural": torch.from_numpy(stored["x_neural"])}
    partial = {"audio": x["audio"], "neural": torch.from_numpy(stored["x_partial_neural"])}
    out = {k: v for k, v in stored.items() if k.startswith("x_")}
    with torch.no_grad():
        for name, inputs in (("encode", x), ("encode_partial", partial)):
            post = model.encode(inputs)
            out[f"{name}_mean"], out[f"{name}_variance"] = post.mean.numpy(), post.variance.numpy()
        out["cross_neural_to_audio"] = model.predict(x, given=["neural"], target="audio").numpy()
        out["cross_audio_to_neural"] = model.predict(x, given=["audio"], target="neural").numpy()
        out |= {f"reconstruct_{m}": v.numpy() for m, v in model.reconstruct(x).items()}
        out["log_likelihood_audio_given_neural"] = model.log_likelihood(
            x, "audio", ["neural"], K=8, generator=torch.Generator().manual_seed(1)).numpy()
        out["log_likelihood_neural_given_none"] = model.log_likelihood(
            x, "neural", [], K=8, generator=torch.Generator().manual_seed(1)).numpy()
        loss, terms = model.loss(x, generator=torch.Generator().manual_seed(0))
    out["loss"] = np.asarray(loss.item())
    out |= {f"loss_term_{k}": np.asarray(v) for k, v in terms.items()}
    return out


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_old_model_loads_as_its_kind_and_reproduces_its_outputs(kind):
    folder = FIXTURE / kind
    model = load_model(folder)
    assert type(model) is CLASSES[kind] and model.config.kind == kind
    assert not model.training
    with np.load(folder / "outputs.npz") as npz:
        stored = dict(npz)
    now = recompute(model, stored)
    assert sorted(now) == sorted(stored)  # the same loss terms, under the same names
    for name, value in stored.items():
        np.testing.assert_allclose(now[name], value, rtol=1e-6, atol=1e-6, err_msg=f"{kind}: {name}")


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_old_model_folder_loads_as_the_kinds_estimator(kind):
    estimator = mmneuro.estimator.load(FIXTURE / kind)
    assert type(estimator) is ESTIMATORS[kind]
    made = json.loads((FIXTURE / "made_with.json").read_text())["config"]
    params = estimator.get_params()
    assert {k: params[k] for k in ("latent_dim", "epochs", "lr", "seed")} == {k: made[k] for k in ("latent_dim", "epochs", "lr", "seed")}
    assert type(estimator.model_) is CLASSES[kind]


def test_fixture_stays_small():
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file()) < 500_000

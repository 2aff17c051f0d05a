"""mmneuro.adam.FusedAdam: bitwise torch.optim.Adam(fused=True)'s parameters, state dicts that load
into either, and no torch._dynamo import (the reason it exists)."""

import copy
import subprocess
import sys

import torch

from mmneuro.adam import FusedAdam


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.SiLU(), torch.nn.Linear(7, 3))


def _steps(model, optimizer, n, start=0):
    for k in range(start, start + n):
        optimizer.zero_grad(set_to_none=True)
        x = torch.randn(11, 5, generator=torch.Generator().manual_seed(k))
        loss = model(x).pow(2).mean()
        loss.backward()
        if k == 1:  # a step in which one parameter has no gradient: torch keeps its state and count
            model[2].bias.grad = None
        optimizer.step()


def test_updates_and_state_equal_torch_fused_adam_bitwise():
    ours, theirs = _model(), _model()
    a, b = FusedAdam(ours.parameters(), lr=3e-2), torch.optim.Adam(theirs.parameters(), lr=3e-2, fused=True)
    _steps(ours, a, 4)
    _steps(theirs, b, 4)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(p, q)
    mine, torch_sd = a.state_dict(), b.state_dict()
    assert mine["param_groups"][0].keys() == torch_sd["param_groups"][0].keys()
    for i, s in torch_sd["state"].items():
        for key, value in s.items():
            assert torch.equal(mine["state"][i][key], value), (i, key)


def test_state_dicts_load_both_ways_and_training_continues_identically():
    reference, resumed_ours, resumed_torch = _model(), _model(), _model()
    opt = FusedAdam(reference.parameters(), lr=1e-2)
    _steps(reference, opt, 2)
    torch_opt = torch.optim.Adam(resumed_torch.parameters(), lr=1e-2, fused=True)
    _steps(resumed_torch, torch_opt, 2)
    resumed_ours.load_state_dict(resumed_torch.state_dict())
    ours = FusedAdam(resumed_ours.parameters(), lr=1.0)  # the loaded state dict's lr replaces it
    ours.load_state_dict(copy.deepcopy(torch_opt.state_dict()))  # as from a checkpoint file
    torch_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    _steps(reference, opt, 2, start=2)
    _steps(resumed_ours, ours, 2, start=2)
    _steps(resumed_torch, torch_opt, 2, start=2)
    for p, q, r in zip(reference.parameters(), resumed_ours.parameters(), resumed_torch.parameters()):
        assert torch.equal(p, q) and torch.equal(p, r)


def test_training_steps_do_not_import_torch_dynamo():
    code = ("import sys, torch; from mmneuro.train import make_optimizer\n"
            "m = torch.nn.Linear(3, 2); o = make_optimizer(m, 1e-3); m(torch.ones(1, 3)).sum().backward(); o.step()\n"
            "assert 'torch._dynamo' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)

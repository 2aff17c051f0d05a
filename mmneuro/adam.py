"""Adam for training: torch.optim.Adam(fused=True)'s update and state dict, without torch.optim.

In torch 2.13 every ``torch.optim`` optimiser imports ``torch._dynamo`` (its constructor through
``add_param_group``'s ``torch._disable_dynamo`` wrapper, its ``step`` through
``_use_grad_for_differentiable``), for ``fused``, ``foreach`` and the default alike: 2.35 s of each
``mmneuro train`` process on a quiet machine, for a compiler training never uses. This calls the
same fused kernel (``torch._fused_adam_``) with the same state, so the parameters after each step
are bitwise those of ``torch.optim.Adam(params, lr, fused=True)``, and the state dict has that
optimiser's layout: checkpoints load into either (tests/test_adam.py).
"""

from __future__ import annotations

import torch


class FusedAdam:
    """Adam (Kingma & Ba 2015) over ``params`` (one device and dtype), no weight decay or AMSGrad."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        if len({(p.device, p.dtype) for p in self.params}) > 1:
            raise ValueError("FusedAdam needs all parameters on one device, in one dtype")
        self.lr, self.betas, self.eps = float(lr), tuple(betas), float(eps)
        self.state: dict[int, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (as torch.optim.Adam: the others keep
        their state and step count)."""
        live = [(i, p) for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        for i, p in live:
            if i not in self.state:  # torch's fused Adam: a float32 step count on the parameter's device
                self.state[i] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                 "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                 "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        states = [self.state[i] for i, _ in live]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_([p for _, p in live], [p.grad for _, p in live], [s["exp_avg"] for s in states],
                           [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=self.lr,
                           beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                           maximize=False, grad_scale=None, found_inf=None)

    def state_dict(self) -> dict:
        """torch.optim.Adam(fused=True)'s layout: per-parameter state by index, one parameter group."""
        group = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": 0.0, "amsgrad": False,
                 "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
                 "fused": True, "decoupled_weight_decay": False, "params": list(range(len(self.params)))}
        return {"state": {i: dict(s) for i, s in self.state.items()}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict` or from a torch.optim.Adam's (one parameter group, the same
        parameters in the same order)."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise ValueError("the state dict's parameters do not match this optimiser's")
        group = groups[0]
        self.lr, self.betas, self.eps = float(group["lr"]), tuple(group["betas"]), float(group["eps"])
        self.state = {}
        for i, s in state_dict["state"].items():
            p = self.params[int(i)]
            # copies: the fused kernel updates them in place, the state dict may be another optimiser's
            step = s["step"].to(device=p.device, dtype=torch.float32, copy=True).reshape(())
            self.state[int(i)] = {"step": step, "exp_avg": s["exp_avg"].to(p, copy=True),
                                  "exp_avg_sq": s["exp_avg_sq"].to(p, copy=True)}

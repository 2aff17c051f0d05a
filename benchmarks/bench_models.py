"""Training-step throughput and peak memory: mmneuro vs MultiVae 1.0.3 (same networks, same losses).

    .venv/bin/python benchmarks/bench_models.py [--steps 5] [--threads 2] [--batch 64] [--K 10] [--clock cpu]
        [--precision auto|float32|bfloat16] [--image 128]

Both sides use the *same* encoder/decoder modules (mmneuro's experts, wrapped in pythae's
BaseEncoder/BaseDecoder for MultiVae, copied so each has its own optimiser state), latent 16,
Gaussian likelihoods on both modalities (MultiVae has no Poisson decoder), likelihood rescaling
on, Adam. Before timing, one process checks that the two libraries give the same
loss on the same batch and seed (MVAE ELBO sum; MMVAE looser IWAE), so the timings compare the
same computation. Each library trains in its own process, as each would (mmneuro's with its
optimiser and its allocator setting, mmneuro.train.make_optimizer and mmneuro.allocator; MultiVae's
with a plain Adam); steps are timed round-robin across these processes in ``--steps`` rounds (the
machine may be shared; benchmarks/rounds.py prints the machine and load, min / median / max and the
ratio per round); mmneuro's FLOP rate (torch.utils.flop_counter) is printed beside the measured
float32 matmul peak (and the bfloat16 one where mmneuro trains in bfloat16: ``--precision``, by default
what ``mmneuro train`` does here, mmneuro.train.resolve_precision; MultiVae trains in float32); peak
RSS (VmHWM) is each process's. ``--libraries`` may add
``multivae_reuse`` / ``multivae_nhwc_reuse`` (MultiVae in a process with mmneuro's allocator setting),
``mmneuro_glibc`` (mmneuro without it: glibc's defaults), ``mmneuro_float32`` (mmneuro trained in
float32 whatever ``--precision`` says) and ``mmneuro@DIR`` (mmneuro imported from
the checkout DIR, e.g. ``git archive <commit> | tar -x -C DIR``: the code before a change, in the
same rounds).
Needs ``pip install --no-deps multivae==1.0.3 pythae`` (+ pydantic, cloudpickle).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

AUDIO_SHAPE, NEURAL_SHAPE, LATENT = (1, 128, 128), (50, 20), 16
SCALES = {"audio": 0.1, "neural": 1.0}
# multivae_nhwc: MultiVae calling the same conv networks in channels_last layout, to separate the
# layout gain from the rest of the difference (a "_reuse" suffix: with mmneuro's allocator setting too)
LIBRARIES = ("multivae", "multivae_nhwc", "mmneuro")


def _mmneuro_model(kind: str, k: int):
    import torch

    from mmneuro.models import ExpertConfig, ModelConfig, MultimodalVAE

    torch.manual_seed(0)
    experts = {
        "audio": ExpertConfig(shape=list(AUDIO_SHAPE), network="conv", likelihood="gaussian",
                              likelihood_params={"scale": SCALES["audio"]}, hidden=[256],
                              norm="group"),  # the default channels and GroupNorm (default_expert)
        "neural": ExpertConfig(shape=list(NEURAL_SHAPE), network="mlp", likelihood="gaussian",
                               likelihood_params={"scale": SCALES["neural"]}, hidden=[256, 256],
                               input_transform="none"),
    }
    return MultimodalVAE(ModelConfig(kind=kind, latent_dim=LATENT, K=k, modalities=experts,
                                     likelihood_weighting="rescale", dreg=True, iwae_variant="loose",
                                     # MultiVae's MVAE is Wu & Goodman's; the default [neural] adds one
                                     # pass of the MLP neural decoder (1.66-1.74 CPU-s per demo epoch either way)
                                     mvae_cross_reconstruction=False))


def _multivae_model(kind: str, k: int, ours, dreg: bool = True, channels_last: bool = False):
    """MultiVae's MVAE/MMVAE around deep copies of ``ours``'s expert networks (``channels_last``:
    call the conv networks in NHWC layout, as mmneuro's experts do)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import import_stand_ins

    import_stand_ins.install()
    from multivae.models import MMVAE, MVAE, MMVAEConfig, MVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self, expert):
            super().__init__()
            self.encoder, self.head = expert.encoder, expert.head

        def forward(self, x):
            q = self.head(self.encoder(x, channels_last=channels_last))
            return ModelOutput(embedding=q.mean, log_covariance=q.logvar)

    class Decoder(BaseDecoder):
        def __init__(self, expert):
            super().__init__()
            self.decoder = expert.decoder

        def forward(self, z):
            return ModelOutput(reconstruction=self.decoder(z, channels_last=channels_last))

    experts = copy.deepcopy(ours.experts)
    common = dict(n_modalities=2, latent_dim=LATENT, input_dims={"audio": AUDIO_SHAPE, "neural": NEURAL_SHAPE},
                  uses_likelihood_rescaling=True, decoders_dist={"audio": "normal", "neural": "normal"},
                  decoder_dist_params={m: {"scale": s} for m, s in SCALES.items()})
    encoders = {m: Encoder(e) for m, e in experts.items()}
    decoders = {m: Decoder(e) for m, e in experts.items()}
    if kind == "mvae":
        return MVAE(MVAEConfig(**common, warmup=0, beta=1.0), encoders, decoders)
    config = MMVAEConfig(**common, K=k, prior_and_posterior_dist="normal", learn_prior=False,
                         loss="dreg_looser" if dreg else "iwae_looser")
    return MMVAE(config, encoders, decoders)


def _batch(n: int):
    import torch

    g = torch.Generator().manual_seed(1)
    return {"audio": torch.rand(n, *AUDIO_SHAPE, generator=g),
            "neural": torch.poisson(torch.full((n, *NEURAL_SHAPE), 2.0), generator=g)}


def training_precision(precision: str = "auto") -> str:
    """The precision mmneuro trains in on this CPU for the setting ``precision`` (float32 for code
    from before the setting existed, ``mmneuro@DIR``)."""
    try:
        from mmneuro.train import resolve_precision
    except ImportError:
        return "float32"
    import torch

    return resolve_precision(precision, torch.device("cpu"))


def _step_fns(library: str, kind: str, k: int, n: int, precision: str = "auto"):
    """→ (model, loss_fn() -> scalar loss as a per-sample mean)."""
    ours = _mmneuro_model(kind, k)
    x = _batch(n)
    if library.startswith("mmneuro"):
        precision = training_precision("float32" if library == "mmneuro_float32" else precision)
        if precision == "float32":  # also code from before mixed_precision existed (mmneuro@DIR)
            return ours, lambda: ours.loss(x)[0]
        import torch

        from mmneuro.models.experts import mixed_precision

        def loss():
            with mixed_precision(ours, getattr(torch, precision)):
                return ours.loss(x)[0]

        return ours, loss
    from multivae.data.datasets.base import MultimodalBaseDataset

    theirs = _multivae_model(kind, k, ours, channels_last=library.startswith("multivae_nhwc"))
    data = MultimodalBaseDataset(data=x, labels=None)
    # MVAE's loss is already a per-sample mean (summed over subsets); MMVAE's is a batch sum
    scale = 1.0 if kind == "mvae" else 1.0 / n
    return theirs, lambda: theirs(data, epoch=1).loss * scale


def check_losses(k: int, n: int) -> dict:
    """Same batch, same seed: the two libraries' loss values (MVAE; MMVAE looser IWAE without DReG)."""
    import torch
    from multivae.data.datasets.base import MultimodalBaseDataset

    x = _batch(n)
    data = MultimodalBaseDataset(data=x, labels=None)
    out = {}
    for kind in ("mvae", "mmvae"):
        ours = _mmneuro_model(kind, k)
        ours.config.dreg = False
        theirs = _multivae_model(kind, k, ours, dreg=False)
        torch.manual_seed(123)
        mine = float(ours.loss(x)[0].detach())
        torch.manual_seed(123)
        other = float(theirs(data, epoch=1).loss.detach()) * (1.0 if kind == "mvae" else 1.0 / n)
        out[kind] = {"mmneuro": mine, "multivae": other, "rel_diff": abs(mine - other) / abs(other)}
    return out


def _peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss would include the parent's peak, inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _trainer(library: str, kind: str, k: int, n: int, precision: str = "auto"):
    """→ step() running one Adam step and returning its loss."""
    import torch

    from mmneuro.train import make_optimizer

    model, loss_fn = _step_fns(library, kind, k, n, precision)
    opt = make_optimizer(model, 1e-4) if library.startswith("mmneuro") else torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


PROTOCOL = "@"  # prefix of the worker's protocol lines on stdout (anything else there is a library's print)


def step_worker(library: str, kind: str, k: int, n: int, threads: int, clock: str = "wall",
                precision: str = "auto") -> None:
    """One library's training in this process (mmneuro's with mmneuro.allocator's setting, as
    mmneuro.train runs it): prints its RSS before training, then for each ``step`` line on stdin runs
    one step and prints its seconds (``clock`` "cpu": this process's CPU time, less inflated by other
    users' load at 1 thread); at the end of stdin, its peak RSS (VmHWM)."""
    import torch

    from mmneuro.allocator import reuse_freed_memory

    torch.set_num_threads(threads)
    with contextlib.ExitStack() as stack:
        if library.partition("@")[0] in ("mmneuro", "mmneuro_float32") or library.endswith("_reuse"):
            stack.enter_context(reuse_freed_memory())
        step = _trainer(library, kind, k, n, precision)
        print(PROTOCOL + json.dumps({"rss_before_training_mb": _peak_rss_mb()}), flush=True)
        now = time.process_time if clock == "cpu" else time.perf_counter
        for line in sys.stdin:
            start = now()
            step()
            print(PROTOCOL + json.dumps(now() - start), flush=True)
    print(PROTOCOL + json.dumps({"peak_rss_mb": _peak_rss_mb()}), flush=True)


class Worker:
    """A :func:`step_worker` process, driven from here."""

    def __init__(self, library: str, kind: str, k: int, n: int, threads: int, clock: str = "wall",
                 precision: str = "auto"):
        cmd = [sys.executable, __file__, "--step-worker", f"{library}:{kind}", "--threads", str(threads),
               "--batch", str(n), "--K", str(k), "--clock", clock, "--precision", precision,
               "--image", str(AUDIO_SHAPE[1])]
        self.info = {"library": library, "kind": kind}
        env = dict(os.environ)
        if "@" in library:  # mmneuro from another checkout
            env["PYTHONPATH"] = os.pathsep.join([library.partition("@")[2], env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info |= self._read()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL):])
        raise RuntimeError(f"worker {self.info} ended (exit {self.proc.wait()})")

    def step(self) -> float:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict:
        self.proc.stdin.close()
        self.info |= self._read()
        self.proc.wait()
        return self.info


def time_interleaved(kind: str, k: int, n: int, steps: int, threads: int, libraries=LIBRARIES,
                     clock: str = "wall", precision: str = "auto") -> tuple[dict[str, list[float]], list[dict]]:
    """Seconds per step of every library, each in its own process, measured round-robin (one step
    each per round, after one warm-up step each) so that load from other users of a shared machine
    hits all of them alike; and each process's RSS (before training, peak)."""
    from rounds import run_rounds

    workers = {lib: Worker(lib, kind, k, n, threads, clock, precision) for lib in libraries}
    try:
        for worker in workers.values():
            worker.step()
        times = run_rounds({lib: w.step for lib, w in workers.items()}, steps,
                           baseline=libraries[0] if len(libraries) > 1 else None, label=f"{kind} s/step: ")
    finally:
        memory = [w.close() for w in workers.values()]
    return times, memory


def step_gflop(kind: str, k: int, n: int) -> float:
    """GFLOP of one mmneuro training step (forward + backward; matmuls and convolutions, as
    torch.utils.flop_counter counts them, whatever their precision)."""
    from torch.utils.flop_counter import FlopCounterMode

    step = _trainer("mmneuro", kind, k, n, "float32")
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def matmul_peak_gflops(rounds: int, n: int = 2048, clock: str = "wall", dtype: str = "float32") -> float:
    """The machine's torch.mm rate in ``dtype`` (GFLOP/s, best round) at the current thread count, timed
    by the same ``clock`` as the steps: the peak the training FLOP rate is compared with."""
    import torch

    from rounds import run_rounds

    a, b = torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))
    a @ b
    now = time.process_time if clock == "cpu" else time.perf_counter

    def timed():
        start = now()
        a @ b
        return now() - start

    seconds = run_rounds({"torch.mm": timed}, rounds,
                         label=f"matmul {n}x{n} {dtype}, {torch.get_num_threads()} threads: ")["torch.mm"]
    return 2 * n**3 / min(seconds) / 1e9


def main(argv=None) -> int:
    global AUDIO_SHAPE  # noqa: PLW0603 (--image: read by every model and batch this process builds)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--K", type=int, default=10)
    parser.add_argument("--kinds", default="mvae,mmvae")
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help="compared libraries, the first the baseline of the ratios (mmneuro alone: no MultiVae needed)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="seconds per step: wall time, or each process's CPU time (at 1 thread, robust to load)")
    parser.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="mmneuro's training precision (auto: as `mmneuro train` on this machine)")
    parser.add_argument("--image", type=int, default=AUDIO_SHAPE[1],
                        help="side of the square spectrogram images (the workflow's config.yaml: 64)")
    parser.add_argument("--step-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    AUDIO_SHAPE = (1, args.image, args.image)
    libraries = tuple(args.libraries.split(","))

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))
    import import_stand_ins

    import_stand_ins.install()
    if args.step_worker:
        library, kind = args.step_worker.split(":")
        step_worker(library, kind, args.K, args.batch, args.threads, args.clock, args.precision)
        return 0
    from rounds import machine

    print(machine())
    precision = training_precision(args.precision)
    print(f"mmneuro trains its conv networks in {precision} (--precision {args.precision})", flush=True)
    peaks = {dtype: matmul_peak_gflops(args.steps, clock=args.clock, dtype=dtype)
             for dtype in dict.fromkeys(["float32", precision])}
    if "multivae" in libraries:
        print(json.dumps({"loss_check": check_losses(args.K, args.batch)}, indent=1), flush=True)
    rows = []
    for kind in args.kinds.split(","):
        times, memory = time_interleaved(kind, args.K, args.batch, args.steps, args.threads, libraries, args.clock,
                                         args.precision)
        gflop = step_gflop(kind, args.K, args.batch)
        rate = gflop / statistics.median(times["mmneuro"])
        shares = ", ".join(f"{rate / peak:.0%} of the {dtype} matmul peak {peak:.0f} GFLOP/s" for dtype, peak in peaks.items())
        print(f"{kind}: mmneuro {gflop:.2f} GFLOP per step, {rate:.0f} GFLOP/s (median step) = {shares}", flush=True)
        for lib, info in zip(libraries, memory):
            row = info | {"s_per_step": statistics.median(times[lib]), "all_s": times[lib]}
            row["samples_per_s"] = args.batch / row["s_per_step"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n| model | library | samples/s | s/step (median) | peak RSS (MB) | speed-up vs {libraries[0]} |\n"
          "|---|---|---|---|---|---|")
    base = {r["kind"]: r["samples_per_s"] for r in rows if r["library"] == libraries[0]}
    for r in rows:
        print(f"| {r['kind']} | {r['library']} | {r['samples_per_s']:.1f} | {r['s_per_step']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {r['samples_per_s'] / base[r['kind']]:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Training: one job per model listed in the config (mmneuro.train), plus one per extra seed of `seeds`
# (train_seed, results/models/<model>/seeds/<k>/, for workflow/rules/consistency.smk). Uses the GPU when the job has one.
# checkpoint.pt is left undeclared so a killed job resumes from it; --restart makes a rerun after a
# change (other settings or data) retrain from scratch instead of refusing the stale checkpoint.


rule train:
    input:
        f"{RESULTS}/dataset.nc",
    output:
        weights=f"{RESULTS}/models/{{model}}/weights.pt",
        config=f"{RESULTS}/models/{{model}}/config.json",
        metrics=report(
            f"{RESULTS}/models/{{model}}/metrics.csv",
            caption="../report/metrics.rst",
            category="Models",
            labels={"model": "{model}", "table": "training metrics"},
        ),
    params:
        overrides=lambda w: set_args(train_settings(w.model)),
        kind=lambda w: model_kind(w.model),
        out=lambda w, output: os.path.dirname(output.weights),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/train/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}.tsv"
    # one thread: on the demo's 2 cores two one-thread trainings side by side finished the demo in 374 s
    # against 451 s for one two-thread training at a time (batch 32 gains little from a second thread)
    threads: 1
    priority: 1  # train before analysing: a one-thread analysis alone would leave a core idle
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=0,
    shell:
        "mmneuro train {input:q} --model {params.kind} --out {params.out:q} "
        "--device auto --restart --quiet {params.overrides} > {log:q} 2>&1"


# The same training with another seed: only the seed differs from the main run, so a changed `seeds`
# list trains only the added seeds (the main run's parameters do not hold `seeds`).
use rule train as train_seed with:
    output:
        weights=f"{RESULTS}/models/{{model}}/seeds/{{seed}}/weights.pt",
        config=f"{RESULTS}/models/{{model}}/seeds/{{seed}}/config.json",
        metrics=f"{RESULTS}/models/{{model}}/seeds/{{seed}}/metrics.csv",
    params:
        overrides=lambda w: set_args(train_settings(w.model, int(w.seed))),
        kind=lambda w: model_kind(w.model),
        out=lambda w, output: os.path.dirname(output.weights),
    wildcard_constraints:
        seed=r"\d+",
    log:
        f"{RESULTS}/logs/train/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}_seed{{seed}}.tsv"

# Consistency across seeds (mmneuro.analysis.consistency) of every model with `seeds`: the main run
# and the extra seeds' runs (workflow/rules/train.smk train_seed), compared pairwise.


rule consistency:
    input:
        models=lambda w: [f"{d}/weights.pt" for d in seed_runs(w.model)],
        dataset=f"{RESULTS}/dataset.nc",
    output:
        directory(f"{RESULTS}/consistency/{{model}}"),
    params:
        model_dirs=lambda w: " ".join(shlex.quote(d) for d in seed_runs(w.model)),
        overrides=set_args({"seed": config["seed"], **config["analysis"]}),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/consistency/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/consistency/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "mmneuro consistency {input.dataset:q} {params.model_dirs} --out {output:q} "
        "{params.overrides} --quiet > {log:q} 2>&1"

# Dataset assembly: all sessions -> one dataset.nc with the train/val/test split saved in it.


rule dataset:
    input:
        syllables=[f"{session_dir(s)}/syllables.nc" for s, i in SESSIONS.items() if i.audio is not None],
        counts=[f"{session_dir(s)}/counts.nc" for s in neural_sessions()],
    output:
        f"{RESULTS}/dataset.nc",
    params:
        sessions=dataset_session_args(),
        overrides=set_args({**config["dataset"], "seed": config["seed"]}),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/dataset.log",
    benchmark:
        f"{RESULTS}/benchmarks/dataset.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    shell:
        "mmneuro dataset {params.sessions} --out {output:q} {params.overrides} > {log:q} 2>&1"

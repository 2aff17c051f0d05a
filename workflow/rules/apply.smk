# Apply a trained model to new sessions (mmneuro.apply): `snakemake apply_all` with config
# `apply: {model: mopoe, sessions: new_sessions.tsv}`. Audio-only rows (no neural column) are fine.


rule apply:
    input:
        model=f"{RESULTS}/models/{{model}}/weights.pt",
        dataset=f"{RESULTS}/dataset.nc",
        sessions=config["apply"]["sessions"] or [],
    output:
        directory(f"{RESULTS}/apply/{{model}}"),
    params:
        model_dir=lambda w, input: os.path.dirname(input.model),
        config=lambda w: f"--config {shlex.quote(str(apply_config_file()))}" if apply_config_file() else "",
        overrides=set_args({**{k: v for k, v in config["apply"].items() if k not in ("model", "sessions")},
                            "seed": config["seed"]}),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/apply/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/apply/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "mmneuro apply {params.model_dir:q} --sessions {input.sessions:q} --reference {input.dataset:q} "
        "--out {output:q} {params.config} {params.overrides} --quiet > {log:q} 2>&1"


rule apply_all:
    input:
        [f"{RESULTS}/apply/{config['apply']['model']}"] if config["apply"]["sessions"] else [],

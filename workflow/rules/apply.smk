# Apply a trained model to new sessions (mmneuro.apply): `snakemake apply_all` with config
# `apply: {model: mopoe, sessions: new_sessions.tsv}`. Audio-only rows (no neural column) are fine.


def apply_sessions():
    """Session ids of the apply table (empty when the config names none)."""
    from mmneuro.config import load_sessions

    table = config["apply"]["sessions"]
    return [s.session for s in load_sessions(table)] if table else []


def apply_config_file():
    """The config file in effect (the first given on the command line wins), for parameter comparison."""
    return workflow.configfiles[0] if workflow.configfiles else ""


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
        settings=(
            f"--n-samples {config['apply']['n_samples']} --seed {config['seed']} "
            f"--flag-percentile {config['apply']['flag_percentile']} "
            f"--session-flag-fraction {config['apply']['session_flag_fraction']}"
        ),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/apply/{{model}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "mmneuro apply {params.model_dir:q} --sessions {input.sessions:q} --reference {input.dataset:q} "
        "--out {output:q} {params.config} {params.settings} --quiet > {log:q} 2>&1"


rule apply_all:
    input:
        [f"{RESULTS}/apply/{config['apply']['model']}"] if config["apply"]["sessions"] else [],

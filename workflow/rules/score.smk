# Scores of each model's analysis against the planted truth of demo sessions (mmneuro.synth.scoring):
# only when the sessions carry one (truth_dirs()); the analysis itself knows nothing of demo data.


from mmneuro.synth.scoring import ORACLE_SETTINGS


# The planted-feature oracle (an ExtraTrees fit, the slowest part of scoring) depends on the dataset,
# the truth and three analysis settings, not on the model: fitted once here, read by every score job.
rule oracle:
    input:
        dataset=f"{RESULTS}/dataset.nc",
        truth=truth_files(),
    output:
        directory(f"{RESULTS}/oracle"),
    params:
        truth=truth_dirs(),
        overrides=set_args({k: v for k, v in {"seed": config["seed"], **config["analysis"]}.items()
                            if k in ORACLE_SETTINGS}),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/oracle.log",
    benchmark:
        f"{RESULTS}/benchmarks/oracle.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "mmneuro oracle {input.dataset:q} {params.truth} {params.overrides} --out {output:q} --quiet > {log:q} 2>&1"


rule score:
    input:
        model=f"{RESULTS}/models/{{model}}/weights.pt",
        dataset=f"{RESULTS}/dataset.nc",
        analysis=f"{RESULTS}/analysis/{{model}}",
        oracle=f"{RESULTS}/oracle",
        truth=truth_files(),
    output:
        # beside the analysis folder, not in it: each rule owns its own output folder
        directory(f"{RESULTS}/scores/{{model}}"),
    params:
        model_dir=lambda w, input: os.path.dirname(input.model),
        truth=truth_dirs(),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/score/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "mmneuro score {params.model_dir:q} {input.dataset:q} {input.analysis:q} {params.truth} "
        "--oracle {input.oracle:q} --out {output:q} --quiet > {log:q} 2>&1"


# Sessions sorted on their own (docs/multisession.md): each session's analysis against its own truth.
rule score_session:
    input:
        model=f"{RESULTS}/models/{{model}}/weights.pt",
        dataset=f"{RESULTS}/dataset.nc",
        analysis=f"{RESULTS}/analysis/{{model}}",
        oracle=f"{RESULTS}/oracle",
        truth=lambda w: f"{truth_dir(w.session)}/ground_truth.json",
    output:
        directory(f"{RESULTS}/scores/{{model}}/sessions/{{session}}"),
    params:
        model_dir=lambda w, input: os.path.dirname(input.model),
        truth=lambda w, input: os.path.dirname(input.truth),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/score/{{model}}.{{session}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/{{model}}.{{session}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "mmneuro score {params.model_dir:q} {input.dataset:q} {input.analysis:q} --truth {params.truth:q} "
        "--session {wildcards.session} --oracle {input.oracle:q} --out {output:q} --quiet > {log:q} 2>&1"

# Scores of each model's analysis against the planted truth of demo sessions (mmneuro.synth.scoring):
# only when the sessions carry one (truth_dirs()); the analysis itself knows nothing of demo data.


rule score:
    input:
        model=f"{RESULTS}/models/{{model}}/weights.pt",
        dataset=f"{RESULTS}/dataset.nc",
        analysis=f"{RESULTS}/analysis/{{model}}",
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
        "--out {output:q} --quiet > {log:q} 2>&1"

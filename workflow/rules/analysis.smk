# Analysis per trained model (mmneuro.analysis) and the report over all of them (mmneuro.report),
# with the scores of workflow/rules/score.smk on demo data.


rule analyse:
    input:
        model=f"{RESULTS}/models/{{model}}/weights.pt",
        dataset=f"{RESULTS}/dataset.nc",
    output:
        report(
            directory(f"{RESULTS}/analysis/{{model}}"),
            patterns=["figures/{name}.png"],
            caption="../report/analysis.rst",
            category="Analysis",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{name}"},
        ),
    params:
        model_dir=lambda w, input: os.path.dirname(input.model),
        overrides=set_args({"seed": config["seed"], **config["analysis"]}),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/analyse/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyse/{{model}}.tsv"
    # one thread: most of an analysis (imports, statistics, figures) is single-threaded Python, so
    # on a small machine two analyses side by side finish sooner than two in a row with 2 threads each
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "mmneuro analyse {params.model_dir:q} {input.dataset:q} --out {output:q} "
        "{params.overrides} --quiet > {log:q} 2>&1"


rule report:
    input:
        analyses=expand(f"{RESULTS}/analysis/{{model}}", model=config["models"]),
        scores=scores(config["models"]),
        consistency=consistency_dirs(),
        dataset=f"{RESULTS}/dataset.nc",
    output:
        report(f"{RESULTS}/analysis_report.html", caption="../report/report.rst", category="Report"),
    params:
        results=lambda w, input: os.path.dirname(input.dataset),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "mmneuro report {params.results:q} --out {output:q} > {log:q} 2>&1"

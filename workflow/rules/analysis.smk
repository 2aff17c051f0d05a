# Analysis per trained model (mmneuro.analysis) and the report over all of them (mmneuro.report).


def truth_dirs():
    """Demo sessions carry their planted truth beside the audio: score against it when present."""
    dirs = [str(s.audio.parent) for s in SESSIONS.values() if s.audio is not None
            and (s.audio.parent / "ground_truth.json").is_file()]
    return ("--truth " + " ".join(shlex.quote(d) for d in dirs)) if dirs else ""


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
        model_dir=f"{RESULTS}/models/{{model}}",
        truth=truth_dirs(),
        overrides=set_args({"seed": config["seed"], **config["analysis"]}),
    log:
        f"{RESULTS}/logs/analyse/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyse/{{model}}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{MMNEURO} analyse {params.model_dir:q} {input.dataset:q} --out {output:q} {params.truth} "
        "{params.overrides} --quiet > {log:q} 2>&1"


rule report:
    input:
        analyses=expand(f"{RESULTS}/analysis/{{model}}", model=config["models"]),
        dataset=f"{RESULTS}/dataset.nc",
    output:
        report(f"{RESULTS}/analysis_report.html", caption="../report/report.rst", category="Report"),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{MMNEURO} report {RESULTS:q} --out {output:q} > {log:q} 2>&1"

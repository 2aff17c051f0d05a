# Neural stage: spike-sorted units -> spike counts binned around each syllable (mmneuro.neural).


rule neural:
    input:
        units=lambda w: SESSIONS[w.session].neural,
        syllables=f"{RESULTS}/{{session}}/syllables.nc",
        sync=lambda w: [p for p in (SESSIONS[w.session].sync_audio, SESSIONS[w.session].sync_neural) if p],
    output:
        f"{RESULTS}/{{session}}/counts.nc",
    params:
        fmt=lambda w: SESSIONS[w.session].neural_format,
        clock=lambda w: clock_args(w.session),
        overrides=set_args(config["neural"]),
        # threads count units side by side when the job has more than one (`--set-threads neural=2`)
        workers=lambda w, threads: f"--workers {threads}" if threads > 1 else "",
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/neural/{{session}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/neural/{{session}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "mmneuro neural {input.units:q} --format {params.fmt} --syllables {input.syllables:q} "
        "--out {output:q} {params.clock} {params.overrides} {params.workers} > {log:q} 2>&1"

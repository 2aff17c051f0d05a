# Audio stage: WAV -> detected syllables -> fixed-shape spectrograms (mmneuro.audio).


rule audio:
    input:
        wav=lambda w: SESSIONS[w.session].audio,
    output:
        nc=f"{RESULTS}/{{session}}/syllables.nc",
        csv=report(
            f"{RESULTS}/{{session}}/syllables.csv",
            caption="../report/syllables.rst",
            category="Audio",
            labels={"session": "{session}", "table": "syllables"},
        ),
    params:
        preset=config["audio"]["preset"],
        # the STFT threads follow the job's threads (sessions side by side do not oversubscribe); at 1,
        # the default, the command stays as it was, so existing results are not rerun for it
        overrides=lambda w, threads: set_args({**config["audio"]["set"], **channel_setting(),
                                               **({"workers": threads} if threads > 1 else {})}),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/audio/{{session}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/audio/{{session}}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=30,
    shell:
        "mmneuro audio {input.wav:q} --session {wildcards.session} --out {output.nc:q} "
        "--preset {params.preset} {params.overrides} > {log:q} 2>&1"

# NWB export (mmneuro.nwb): `snakemake nwb_all` writes results/<session>/<session>.nwb for every
# session with audio and units: syllables, syllable-aligned counts and every model's latent means.


rule nwb:
    input:
        dataset=f"{RESULTS}/dataset.nc",
        counts=f"{RESULTS}/{{session}}/counts.nc",
        units=lambda w: SESSIONS[w.session].neural,
        models=expand(f"{RESULTS}/models/{{model}}/weights.pt", model=config["models"]),
    output:
        f"{RESULTS}/{{session}}/{{session}}.nwb",
    params:
        fmt=lambda w: SESSIONS[w.session].neural_format,
        models=lambda w, input: " ".join(shlex.quote(os.path.dirname(m)) for m in input.models),
        overrides=set_args(config["nwb"]),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/nwb/{{session}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nwb/{{session}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    shell:
        "mmneuro nwb {input.dataset:q} --counts {input.counts:q} --units {input.units:q} --format {params.fmt} "
        "--model {params.models} --out {output:q} {params.overrides} > {log:q} 2>&1"


rule nwb_all:
    input:
        expand(f"{RESULTS}/{{session}}/{{session}}.nwb", session=neural_sessions()),

"""Sessions sorted separately (issue 20): the union dataset, per-session read-in/read-out, matching."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mmneuro.analysis.multisession import match_units, matching_recall, session_view
from mmneuro.dataset import assemble_parts, recorded_units
from mmneuro.errors import InputError
from mmneuro.models import ModelConfig, MultimodalVAE, default_expert
from mmneuro.synth.multiday import multiday_sessions, planted_rate_hz


@pytest.fixture(scope="module")
def planted():
    return multiday_sessions(0, n_syllables=80, per_band=4, n_freq=16, n_time=8)


def test_union_keeps_each_sort_apart(planted):
    parts, truth = planted
    ds = assemble_parts(parts, units={sid: "own" for sid, _, _ in parts})
    rec = recorded_units(ds)
    assert ds.sizes["unit"] == sum(len(u) for u in truth["units"].values())
    assert list(ds["unit"].values) == list(range(ds.sizes["unit"]))
    for sid, syl, cnt in parts:
        rows = ds["session"].values == sid
        counts = ds["total_counts"].values[rows]
        others = np.setdiff1d(np.arange(ds.sizes["unit"]), rec[sid])
        assert np.isnan(counts[:, others]).all()  # another sort's units: not recorded here
        np.testing.assert_array_equal(counts[:, rec[sid]], cnt["total_counts"].values)
        assert set(ds["unit_session"].values[rec[sid]]) == {sid}
        np.testing.assert_array_equal(ds["unit_id"].values[rec[sid]], cnt["unit"].values)
        view = session_view(ds, sid)
        np.testing.assert_array_equal(view["unit"].values, cnt["unit"].values)
        assert not np.isnan(view["total_counts"].values).any()
    assert ds.attrs["params"]["units"] == {sid: "own" for sid, _, _ in parts}


def test_shared_units_unchanged(planted):
    """Sessions of one sort assemble exactly as before: no new coordinates, attrs or dtypes."""
    parts, _ = planted
    cnt = parts[0][2]
    same = [(sid, syl, cnt) for sid, syl, _ in parts]
    a = assemble_parts(same)
    b = assemble_parts(same, units={sid: "shared" for sid, _, _ in same})
    assert a.identical(b)
    assert "unit_session" not in a.coords and "units" not in a.attrs["params"]
    assert a["total_counts"].dtype == np.int32
    with pytest.raises(InputError, match="differ"):  # different unit sets under one sort: still an error
        assemble_parts(parts)
    with pytest.raises(InputError, match="units"):
        assemble_parts(parts, units={"day1": "tracked"})


def test_mixed_sorts_and_audio_only(planted):
    """Two sessions of one sort, one on its own and an audio-only session."""
    parts, _ = planted
    (s1, syl1, cnt1), (s2, syl2, _), (s3, syl3, cnt3) = parts
    ds = assemble_parts([(s1, syl1, cnt1), (s2, syl2, cnt1.isel(syllable=slice(0, 0)).reindex(
        syllable=cnt1["syllable"].values)), (s3, syl3, cnt3), ("quiet", syl1, None)], units={s3: "own"})
    rec = recorded_units(ds)
    assert len(rec[s1]) == len(rec[s2]) == cnt1.sizes["unit"] and len(rec[s3]) == cnt3.sizes["unit"]
    assert len(rec["quiet"]) == 0
    assert set(ds["unit_session"].values) == {"shared", s3}


def _model(n_units: int) -> MultimodalVAE:
    audio = default_expert("audio", [1, 16, 8])
    audio.channels, audio.hidden = [4, 4], [16]
    neural = default_expert("neural", [n_units])
    neural.hidden = [16]
    torch.manual_seed(0)
    return MultimodalVAE(ModelConfig(kind="mopoe", latent_dim=4, modalities={"audio": audio, "neural": neural}))


def test_loss_ignores_absent_units(planted):
    """A session's loss and gradients involve only its own units: the read-in columns and read-out
    rows of other sessions' units get no gradient, and perturbing them changes neither the loss nor
    any gradient (the NaN counts are zero-filled and left out of the likelihood)."""
    parts, _ = planted
    ds = assemble_parts(parts, units={sid: "own" for sid, _, _ in parts})
    rows = np.flatnonzero(ds["session"].values == "day1")
    absent = np.setdiff1d(np.arange(ds.sizes["unit"]), recorded_units(ds)["day1"])
    audio = torch.from_numpy(ds["spectrogram"].values[rows][:, None].astype(np.float32))
    neural = torch.from_numpy(ds["total_counts"].values[rows].astype(np.float32))
    assert torch.isnan(neural[:, absent]).all()

    def loss_and_grads(model):
        model.zero_grad()
        torch.manual_seed(2)  # the same dropout masks in both calls
        loss, _ = model.loss({"audio": audio, "neural": neural}, generator=torch.Generator().manual_seed(1))
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    model = _model(ds.sizes["unit"])
    loss, grads = loss_and_grads(model)
    assert torch.isfinite(loss)
    expert = model.experts["neural"]
    first = [m for m in expert.encoder.modules() if isinstance(m, torch.nn.Linear)][0]  # read-in (hidden, units)
    last = [m for m in expert.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]  # read-out (units, hidden)
    names = {p: k for k, p in model.named_parameters()}
    mine = recorded_units(ds)["day1"]
    assert grads[names[last.weight]][absent].abs().max() == 0 < grads[names[last.weight]][mine].abs().max()
    assert grads[names[first.weight]][:, absent].abs().max() == 0 < grads[names[first.weight]][:, mine].abs().max()
    with torch.no_grad():  # other sessions' read-in columns and read-out rows: no effect on day 1's loss
        first.weight[:, absent] += torch.randn_like(first.weight[:, absent])
        last.weight[absent] += torch.randn_like(last.weight[absent])
        last.bias[absent] += 3.0
    loss2, grads2 = loss_and_grads(model)
    torch.testing.assert_close(loss2, loss)
    for k in grads:
        torch.testing.assert_close(grads2[k], grads[k])


def test_matching_recovers_planted_identities(planted):
    """Decoded rates that equal each neuron's planted rate (the oracle): every shared neuron is
    matched to itself; noise of 30 % on one copy's rates is what unmatched pairs look like."""
    parts, truth = planted
    ds = assemble_parts(parts, units={sid: "own" for sid, _, _ in parts})
    freq = ds["freq_hz"].values[ds["spectrogram"].values.mean(2).argmax(1)]
    neurons = [truth["neurons"][truth["units"][s][int(u)]]
               for s, u in zip(ds["unit_session"].values, ds["unit_id"].values)]
    rates = planted_rate_hz(neurons, freq) * 0.1
    table = match_units(rates, ds)
    assert list(table.columns) == ["session_a", "unit_a", "session_b", "unit_b", "score", "matched"]
    score = matching_recall(table, truth)
    assert score["shared_pairs"] > 0 and score["recall"] == 1.0
    shuffled = rates[:, np.random.default_rng(0).permutation(rates.shape[1])]
    assert matching_recall(match_units(shuffled, ds), truth)["recall"] < 0.5  # the score sees identity


def test_unit_recall_counts_units_followed_to_one_or_every_other_day():
    """Neuron 0 is on all three days, neuron 1 on days 1 and 2, neuron 2 on day 3 only. Matched: neuron
    0's day1-day2 pair (right), its day1-day3 pair (wrong: to neuron 2) and neuron 1's pair (right).
    Pairs: 2 of 4 shared pairs found. Units: 5 shared units (neuron 0 on each day, neuron 1 on days 1 and
    2); followed to some other day: 4 (not neuron 0's day-3 unit); to every other day that recorded
    it: 2 (neuron 1's two units; neuron 0's day-1 and day-2 units miss day 3)."""
    truth = {"neurons": [{"band": 0}] * 3,
             "units": {"d1": {10: 0, 11: 1}, "d2": {20: 0, 21: 1}, "d3": {30: 0, 31: 2}}}
    table = pd.DataFrame([("d1", 10, "d2", 20, 1.0, True), ("d1", 11, "d2", 21, 1.0, True),
                          ("d1", 10, "d3", 31, 1.0, True), ("d1", 11, "d3", 30, 1.0, False),
                          ("d2", 20, "d3", 30, 1.0, False), ("d2", 21, "d3", 31, 1.0, False)],
                         columns=["session_a", "unit_a", "session_b", "unit_b", "score", "matched"])
    score = matching_recall(table, truth)
    assert (score["shared_pairs"], score["found"]) == (4, 2)
    assert score["shared_units"] == 5
    assert score["unit_recall"] == 4 / 5 and score["unit_recall_all"] == 2 / 5


def test_mutual_nearest_neighbours_are_always_matched():
    """The Hungarian assignment of all units would pair row 0 with column 1 (0.8 + 0.85 > 0.9 + 0.1),
    splitting the mutual nearest neighbours (0, 0); the matching keeps them and assigns the rest.
    On random scores: every mutual pair is matched, nothing else is, and the assignment is one-to-one."""
    from mmneuro.analysis.multisession import mutual_assignment

    rows, cols, mutual = mutual_assignment(np.array([[0.9, 0.8], [0.85, 0.1]]))
    assert {(int(a), int(b), bool(m)) for a, b, m in zip(rows, cols, mutual)} == {(0, 0, True), (1, 1, False)}
    rng = np.random.default_rng(0)
    for shape in [(7, 7), (5, 9), (9, 5)] * 10:
        score = rng.random(shape)
        rows, cols, mutual = mutual_assignment(score)
        assert len(rows) == min(shape) and len(set(rows)) == len(set(cols)) == len(rows)
        expected = {(a, b) for a, b in enumerate(score.argmax(1)) if score[:, b].argmax() == a}
        assert {(int(a), int(b)) for a, b in zip(rows[mutual], cols[mutual])} == expected


def test_session_model_is_the_union_model_on_its_session(planted):
    """The sliced model (one session's read-in and read-out) gives the union model's loss and
    predictions on that session: single-session analyses of it are analyses of the shared model."""
    from mmneuro.analysis.multisession import session_model

    parts, _ = planted
    ds = assemble_parts(parts, units={sid: "own" for sid, _, _ in parts})
    model = _model(ds.sizes["unit"]).eval()
    for sid in ("day1", "day3"):
        view = session_view(ds, sid)
        mine = session_model(model, recorded_units(ds)[sid])
        rows = ds["session"].values == sid
        audio = torch.from_numpy(ds["spectrogram"].values[rows][:, None].astype(np.float32))
        union = {"audio": audio, "neural": torch.from_numpy(ds["total_counts"].values[rows].astype(np.float32))}
        alone = {"audio": audio, "neural": torch.from_numpy(view["total_counts"].values.astype(np.float32))}
        torch.manual_seed(3)
        a, _ = model.loss(union, generator=torch.Generator().manual_seed(1))
        torch.manual_seed(3)
        b, _ = mine.loss(alone, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(a, b)
        pa = model.predict(union, ["audio"], "neural")[:, recorded_units(ds)[sid]]
        torch.testing.assert_close(pa, mine.predict(alone, ["audio"], "neural"))


def test_sessions_table_units_column(tmp_path):
    from mmneuro.config import load_sessions

    table = tmp_path / "sessions.tsv"
    table.write_text("session\taudio\tunits\nd1\ta.wav\town\nd2\ta.wav\t\n")
    s1, s2 = load_sessions(table, check_files=False)
    assert (s1.units, s2.units) == ("own", "shared")
    table.write_text("session\taudio\tunits\nd1\ta.wav\ttracked\n")
    with pytest.raises(InputError, match="line 2.*units"):
        load_sessions(table, check_files=False)


def test_analyse_folder_writes_each_session_and_the_matching(planted, tmp_path):
    from mmneuro.analysis.pipeline import analyse, analyse_folder
    from mmneuro.cli import main
    from mmneuro.io import write_netcdf
    from mmneuro.train import fit

    parts, _ = planted
    for sid, syl, cnt in parts:
        write_netcdf(syl, tmp_path / f"{sid}_syl.nc")
        write_netcdf(cnt, tmp_path / f"{sid}_cnt.nc")
    args = ["dataset", "--out", str(tmp_path / "dataset.nc")]
    for sid, _, _ in parts:
        args += ["--session", sid, str(tmp_path / f"{sid}_syl.nc"), str(tmp_path / f"{sid}_cnt.nc"), "--own-units", sid]
    assert main(args) == 0
    fit(tmp_path / "dataset.nc", {"kind": "mvae", "latent_dim": 3, "epochs": 1, "min_steps": 0,
                                  "audio": {"channels": [4, 4], "hidden": [8]}, "neural": {"hidden": [8]}},
        tmp_path / "model", progress=False)
    out = analyse_folder(tmp_path / "model", tmp_path / "dataset.nc", tmp_path / "analysis", progress=False)
    for sid, _, cnt in parts:
        summary = (out / "sessions" / sid / "summary.json")
        assert summary.is_file()
    table = pd.read_csv(out / "unit_matching.csv")
    assert set(table["session_a"]) | set(table["session_b"]) == {sid for sid, _, _ in parts}
    from mmneuro.io import read_netcdf
    from mmneuro.models import load_model

    with pytest.raises(InputError, match="analyse_sessions"):
        analyse(load_model(tmp_path / "model"), read_netcdf(tmp_path / "dataset.nc"), progress=False)


def test_workflow_passes_own_units_to_the_dataset_stage(tmp_path):
    """A sessions table with ``units: own`` reaches `mmneuro dataset --own-units` (dry run)."""
    from tests.workflow_helpers import make_project, snakemake

    make_project(tmp_path, n_sessions=2, duration_s=5.0)
    table = tmp_path / "data" / "sessions.tsv"
    lines = table.read_text().splitlines()
    header = lines[0].split("\t")
    rows = [line for line in lines[1:] if line and not line.startswith("#")]
    table.write_text("\n".join(["\t".join(header + ["units"])] + [rows[0] + "\t", rows[1] + "\town"]) + "\n")
    out = snakemake(tmp_path, "results/dataset.nc", "--dry-run", "--printshellcmds", "--cores", "1")
    command = [line for line in out.stdout.splitlines() if "mmneuro dataset" in line]
    second = rows[1].split("\t")[0]
    assert len(command) == 1 and f"--own-units {second}" in command[0]
    assert command[0].count("--own-units") == 1


@pytest.mark.parametrize("name", ["gaussian", "laplace", "poisson"])
def test_masked_likelihood_is_the_likelihood_of_the_observed_units(name):
    from mmneuro.models.likelihoods import make_likelihood

    out, x = torch.randn(3, 5), torch.poisson(torch.ones(3, 5), generator=torch.Generator().manual_seed(0))
    seen = torch.ones(3, 5, dtype=torch.bool)
    seen[:, 2] = False
    keep = [0, 1, 3, 4]
    torch.testing.assert_close(make_likelihood(name, (5,)).log_prob(out, x, seen),
                               make_likelihood(name, (4,)).log_prob(out[:, keep], x[:, keep]))


@pytest.mark.slow
def test_workflow_with_own_units_reaches_the_report(tmp_path):
    """`snakemake` on the tiny demo project with every session sorted on its own (the second's unit
    ids renumbered) runs to the report: per-session analyses, scores and consistency, the matching table."""
    from tests.workflow_helpers import make_own_units_project, snakemake

    make_own_units_project(tmp_path, renumber=100)
    snakemake(tmp_path, "--cores", "2")
    results = tmp_path / "results"
    for model in ("mvae", "mopoe"):  # each session's analysis scored against its own truth and unit ids
        for sid in ("demo01", "demo02"):
            scores = json.loads((results / "scores" / model / "sessions" / sid / "scores.json").read_text())
            units = pd.read_csv(results / "analysis" / model / "sessions" / sid / "clusters.csv")["unit"]
            assert scores["clusters"]["n_units"] == len(units) and (units >= 100).all() == (sid == "demo02")
    html = (results / "analysis_report.html").read_text()
    for model in ("mvae", "mopoe"):
        assert f"Units matched across sessions: {model}" in html
        for sid in ("demo01", "demo02"):
            assert (results / "analysis" / model / "sessions" / sid / "summary.json").is_file()
            assert f"Model {model} · {sid}" in html
    matching = pd.read_csv(results / "analysis" / "mvae" / "unit_matching.csv")
    assert (matching["unit_b"] >= 100).all() and (matching["unit_a"] < 100).all()  # the sorters' own ids
    assert "<th>cluster_a</th>" in html and html.count("Scores against the planted truth") == 4
    assert "units (each session its own sort)" in html
    for sid in ("demo01", "demo02"):  # the MVAE's two seeds compared on each session's units
        assert (results / "consistency" / "mvae" / "sessions" / sid / "summary.json").is_file()
    assert html.count("Consistency across seeds") == 2
    snakemake(tmp_path, "nwb_all", "--cores", "2")  # each session's file with its own units
    assert all((results / sid / f"{sid}.nwb").is_file() for sid in ("demo01", "demo02"))


def test_poisson_glm_recovers_planted_coefficients():
    """Newton's Poisson regression of many units at once: with 4000 draws of known coefficients and
    exposures the estimates sit within 4 standard errors (about 0.05 here) of the truth, and a
    unit's rows outside its ``fit`` mask do not matter."""
    from mmneuro.analysis.multisession import _poisson_glm

    rng = np.random.default_rng(0)
    n = 4000
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    beta = np.array([[0.5, 0.8, -0.3], [-1.0, 0.0, 0.6], [1.5, -0.4, 0.2]])
    offset = np.log(rng.uniform(0.05, 0.2, n))
    counts = rng.poisson(np.exp(offset[:, None] + x @ beta.T)).astype(float)
    fit = np.ones_like(counts, bool)
    fit[: n // 2, 2] = False  # unit 2 fitted on half its rows
    counts[: n // 2, 2] = 1e6  # garbage where it is not fitted
    got = _poisson_glm(x, counts, offset, fit, ridge=0.0)
    assert np.abs(got - beta).max() < 0.2
    mu = np.exp(offset[:, None] + x @ beta.T)
    for u in range(3):  # 4 standard errors from the Fisher information
        rows = fit[:, u]
        se = np.sqrt(np.diag(np.linalg.inv((x[rows] * mu[rows, u, None]).T @ x[rows])))
        assert np.all(np.abs(got[u] - beta[u]) < 4 * se), (u, got[u], beta[u], se)


def test_consistency_per_own_unit_session(planted, tmp_path):
    """`mmneuro consistency` on sessions sorted on their own compares the runs on each session's own
    units (one folder per session, the sorter's ids), as the per-session analyses do."""
    from mmneuro.analysis.consistency import consistency_folder
    from mmneuro.io import write_netcdf

    parts, _ = planted
    ds = assemble_parts(parts, units={sid: "own" for sid, _, _ in parts})
    path = write_netcdf(ds, tmp_path / "dataset.nc")
    dirs = []
    for seed in (0, 1):
        model = _model(ds.sizes["unit"])
        torch.manual_seed(seed)
        for p in model.parameters():  # two different runs
            p.data.normal_(0, 0.3)
        dirs.append(model.save(tmp_path / f"run{seed}"))
    out = consistency_folder(dirs, path, tmp_path / "consistency")
    assert sorted(p.name for p in (out / "sessions").iterdir()) == sorted(sid for sid, _, _ in parts)
    for sid, _, cnt in parts:
        units = pd.read_csv(out / "sessions" / sid / "units.csv")["unit"]
        np.testing.assert_array_equal(units, cnt["unit"].values)
        assert json.loads((out / "sessions" / sid / "summary.json").read_text())["n_units"] == len(units)
    assert not list(tmp_path.glob(".*tmp"))

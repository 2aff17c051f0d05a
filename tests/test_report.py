"""The HTML report over analysis folders: the answer first, self-contained, every table and figure,
scores flagged; checked in headless Chromium."""

import base64
import json
import re

import pytest

from mmneuro.errors import InputError
from cli_helpers import run_command
from test_analysis_pipeline import FAST, planted_world, run_cli, train_small_model


def run_report(argv):
    return run_command("report", argv)


@pytest.mark.slow
def test_report_over_two_models(tmp_path):
    dataset, truth, units = planted_world(tmp_path, n_per_session=120, units_per_cluster=2)
    for kind in ("mvae", "mopoe"):  # the MoPoE one factorised: 2 private latents per modality
        model = train_small_model(tmp_path, dataset, kind=kind, steps=60, private_dims=2 if kind == "mopoe" else 0)
        analysis = tmp_path / "analysis" / kind
        assert run_cli([str(model), str(dataset), "--out", str(analysis), "--quiet", "--set", *FAST]) == 0
        assert run_command("score", [str(model), str(dataset), str(analysis), "--truth", *map(str, truth),
                                     "--out", str(tmp_path / "scores" / kind), "--quiet"]) == 0
    out = tmp_path / "report.html"
    assert run_report([str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "Model mvae" in text and "Model mopoe" in text
    # self-contained: no external src/href outside the inline scripts (bokeh's library and the latent
    # map, whose thumbnails are data URIs too), every embedded image decodes to a PNG
    page = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert not re.search(r"(src|href)=['\"](?!data:|#)", page) and "<script src" not in text
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    # 7 figures per model + the factorised one's traversals: shared (audio, neural), audio_private,
    # neural_private + the best model's clusters x bands again on the first screen
    assert len(images) == 2 * 7 + 4 + 1 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    from mmneuro.io import read_netcdf
    from mmneuro.report.latent_map import bokeh_js

    n_syllables = read_netcdf(tmp_path / "analysis" / "mvae" / "embeddings.nc").sizes["syllable"]
    in_library = bokeh_js().count("data:image/png;base64,")  # its own icons
    assert text.count("data:image/png;base64,") - len(images) - in_library == n_syllables  # a thumbnail per point
    assert text.count("Shared and private latents") == 1 and "Where the planted factors sit" in text
    assert "mopoe: neural_private" in text and "mvae: shared" in text  # probes side by side
    assert "tuning (frequency, duration) in shared" in text  # placement rows only for the factorised model
    # the planted-truth scores appear with the measured ARI of each model
    for kind in ("mvae", "mopoe"):
        ari = json.loads((tmp_path / "scores" / kind / "scores.json").read_text())["clusters"]["ari"]
        assert f"ARI = {ari:.3f}" in text
    assert "syllables per session" in text and "s1: 120" in text
    # the planted untuned units are shown as untuned, in no cluster
    untuned = sorted(u["unit"] for u in units if u["cluster"] == "untuned")
    assert text.count(f"untuned units ({len(untuned)}, cluster −1, in no cluster): "
                      f"{', '.join(map(str, untuned))}") == 2
    assert "untuned units found (recall ≥ 0.9" in text
    assert "oracle (planted rate)" in text and "oracle (planted features)" in text  # the scores' crosspred rows


def test_report_without_analyses_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no analysis folders"):
        run_report([str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert not (tmp_path / "r.html").exists()


def test_posterior_block_flags_a_collapsed_modality(tmp_path):
    from mmneuro.report.html import _posterior_block

    metrics = tmp_path / "metrics.csv"  # the best epoch (lowest val_loss) is the second row
    metrics.write_text("epoch,val_loss,val_kl_unimodal_audio,val_info_unimodal_audio,val_kl_unimodal_neural,"
                       "val_info_unimodal_neural\n1,10,9.0,8.0,5.0,4.0\n2,5,9.6,0.2,6.0,5.5\n")
    text = _posterior_block(metrics)
    assert "audio: 0.2 nats (9.6 KL to the prior) <span class=fail>collapsed" in text
    assert "neural: 5.5 nats (6.0 KL to the prior) <span class=pass>ok" in text
    assert _posterior_block(tmp_path / "missing.csv") == ""


def test_templates_escape_values_but_not_tables(tmp_path):
    from mmneuro.report.html import _markup_table, _posterior_block

    metrics = tmp_path / "metrics.csv"  # a modality name that is markup must come out as text
    metrics.write_text("epoch,val_loss,val_kl_unimodal_a<b>,val_info_unimodal_a<b>\n1,1,2.0,3.0\n")
    text = _posterior_block(metrics)
    assert "a&lt;b&gt;: 3.0 nats" in text and "<b>" not in text
    import pandas as pd

    assert str(_markup_table(pd.DataFrame({"x": [1.0]}))).startswith("<table")  # tables pass through as HTML


def _answer_rows(html: str) -> list[tuple[str, list[int], str]]:
    """(cluster, units, goes with) per row of the first screen's table, and ("untuned", units, "")."""
    section = html[html.index("<section id=answer>"):html.index("</section>")]
    rows = []
    for head, units, what in re.findall(r"<tr><th>([^<]+)</th><td[^>]*>([^<]*)</td><td[^>]*>(.*?)</td>", section):
        rows.append((head, [int(u) for u in re.findall(r"\d+", units)], re.sub("<[^>]+>", "", what)))
    untuned = re.search(r"<tr><th>untuned \(\d+\)</th><td[^>]*>(.*?)</td>", section).group(1)
    rows.append(("untuned", [int(u) for u in re.findall(r"(\d+) \(q", untuned)], ""))
    return rows


@pytest.mark.slow
def test_first_screen_states_the_planted_answer(local_project):
    """On the demo, the report opens with the planted clusters (units and band or feature) and untuned
    units. The report knows nothing of the truth; only this test reads it."""
    html = (local_project / "results" / "analysis_report.html").read_text()
    assert html.index("<section id=answer>") < html.index("Models compared") < html.index("Latent map") \
        < html.index("id=details")
    truth = json.loads((local_project / "data" / "demo01" / "ground_truth.json").read_text())
    planted = {}
    for unit in truth["units"]:
        if unit["label"] == "good":  # mua and noise units are left out by the neural stage's QC
            planted.setdefault(unit["cluster"], []).append(unit["unit"])
    found = {tuple(sorted(units)): what for _, units, what in _answer_rows(html)}
    centre = {c["name"]: c["center"] for c in truth["clusters"]}
    for name, units in planted.items():
        what = found.get(tuple(sorted(units)))
        assert what is not None, f"planted cluster {name} {sorted(units)} not a row of the first screen: {found}"
        if name.startswith("band_"):
            assert abs(float(what.split(" kHz")[0]) - centre[name] / 1e3) <= 2.5, (name, what)
        elif name != "untuned":
            assert what == {"duration": "duration", "fm_slope": "FM slope"}[name], (name, what)
    assert "Best model: <b>" in html


@pytest.mark.slow
def test_report_in_a_browser(local_project, tmp_path):
    """The workflow's report in headless Chromium at a laptop's size: no console error, every image
    loads, no horizontal overflow, the answer's table on the first screen, the latent map's hover shows
    a spectrogram; a screenshot of the first screen is kept (test-artifacts/)."""
    from browser_helpers import assert_works_in_a_browser, check_page, screenshot

    report = local_project / "results" / "analysis_report.html"
    found = check_page(report, tmp_path)
    assert_works_in_a_browser(found)
    assert found["images"] >= 10 and found["answer_table_bottom"] <= found["viewport_height"], found
    assert "kHz mean" in found["hover"]["text"]  # the tooltip's features beside the spectrogram
    screenshot(report, "analysis_report_first_screen.png")


def test_browser_check_sees_errors_broken_images_and_overflow(tmp_path):
    """The browser check has power: a page with a console error, a missing image and a table wider
    than the screen fails each of its conditions (seconds; skips without chromium)."""
    from browser_helpers import check_page

    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><title>bad</title></head><body><table><tr>"
                    + "<td>a wide cell</td>" * 200 + "</tr></table><img alt=gone src='missing.png'>"
                    "<script>console.error('boom')</script></body></html>")
    found = check_page(page, tmp_path)
    assert "boom" in found["errors"] and found["broken"] == ["gone"]
    assert found["scroll_width"] > found["client_width"] and found["maps"] == 0


def test_latent_map_thumbnails_cap_and_tooltip():
    """Thumbnails are small grey PNGs with low frequencies at the bottom (a syllable without audio gets
    none); the map keeps at most MAX_POINTS syllables, evenly spaced, and says so; its tooltip shows
    the thumbnail."""
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image

    from mmneuro.report import latent_map

    image = np.zeros((2, 24, 16))
    image[0, :4] = 1.0  # energy in the lowest frequency rows (freq index 0 is the lowest)
    image[1] = np.nan
    thumbs = latent_map.thumbnails(image, size=20)
    png = Image.open(io.BytesIO(base64.b64decode(thumbs[0].split(",", 1)[1])))
    pixels = np.asarray(png)
    assert png.mode == "L" and png.size == (20, 20) and pixels[-1].mean() > 200 and pixels[0].mean() < 50
    assert thumbs[1] == ""
    pick = latent_map.evenly_spaced(5000)
    assert len(pick) == latent_map.MAX_POINTS and pick[0] == 0 and pick[-1] == 4999
    n = 3
    data = latent_map.MapData({"m": (np.arange(6.0).reshape(n, 2), np.array([0.6, 0.3]))},
                              pd.DataFrame({"syllable": list("abc"), "session": ["s"] * n, "freq_khz": [40.0, 50, 60],
                                            "duration_ms": [10.0, 20, 30]}),
                              {"mean frequency (kHz)": np.array([40.0, 50, 60]), "unit 3 activity": np.zeros(n)},
                              thumbs=["data:image/png;base64,AAAA"] * n, n_total=5000)
    script, div = latent_map.components(data)
    assert "img src=" in script and "@thumb" in script and script.count("data:image/png;base64,AAAA") == n
    assert "3 of 5000 syllables" in latent_map.caption(data) and "a unit's activity" in latent_map.caption(data)


def test_best_model_compares_only_models_scored_on_the_same_spike_windows(tmp_path):
    """A model scored on syllable-long windows (total counts) explains spikes an onset window never
    sees; its higher bits per spike must not make it the best of models scored on onset windows."""
    from mmneuro.inputs import SPIKE_WINDOWS
    from mmneuro.report.html import BEST_BY, best_model

    folders = []
    for name, bps, window in (("a", 0.20, "counts"), ("b", 0.30, "counts"), ("c", 0.60, "total_counts")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"crosspred": {
            "spike_window": SPIKE_WINDOWS[window], "bits_per_spike_all_units": {BEST_BY: bps}}}))
        (folder / "crosspred.csv").write_text(f"method,unit,pearson_r\n{BEST_BY},0,0.5\n")
        folders.append(folder)
    best = best_model(folders)
    assert best["name"] == "b"
    assert [r["model"] for r in best["rows"]] == ["b", "a", "c"]
    assert "c: another window, not compared" in best["criterion"]
    assert "not compared" not in best_model(folders[:2])["criterion"]


@pytest.mark.slow
def test_first_screen_answers_each_own_unit_session(local_project, tmp_path):
    """Sessions sorted on their own (docs/multisession.md): one answer per session, each from that
    session's best model, in session order, the first one above the models compared."""
    import shutil

    from mmneuro.report.html import build_report

    for model in ("mvae", "mopoe"):
        for session in ("dayA", "dayB"):
            shutil.copytree(local_project / "results" / "analysis" / model,
                            tmp_path / "analysis" / model / "sessions" / session)
    html = build_report(tmp_path)
    first, second = html.index("<section id=answer>"), html.index("<section id=answer-1>")
    assert first < second < html.index("Models compared")
    best = re.findall(r"Best model: <b>(.*?)</b>", html)
    assert [b.split(" · ")[1] for b in best] == ["dayA", "dayB"] and best[0].split(" · ")[0] == best[1].split(" · ")[0]
    assert html.count("Next: <a href='#models'>") == 1

"""The HTML report over analysis folders: self-contained, every table and figure, scores flagged."""

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
    # self-contained: no external src/href, every embedded image decodes to a PNG
    assert not re.search(r"(src|href)=['\"](?!data:)", text)
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    # 6 figures per model + the factorised one's traversals: shared (audio, neural), audio_private, neural_private
    assert len(images) == 2 * 6 + 4 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
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

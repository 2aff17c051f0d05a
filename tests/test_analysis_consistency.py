"""Consistency across seeds (mmneuro.analysis.consistency): the metrics on planted embeddings and the CLI's errors."""

import numpy as np
import pytest

from mmneuro.analysis.consistency import (cluster_agreement, linear_r2, pair_table, summarise_r2,
                                          whitened_profiles)
from mmneuro.analysis.neurons import cluster_profiles, correlation
from mmneuro.cli import main as cli_main

N = 400  # syllables per split in these tests


def random_map(rng, d):
    """A random invertible linear map: rotation x scales in [0.5, 2] x sign flips, then a latent permutation."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * rng.uniform(0.5, 2, d) * rng.choice([-1, 1], d))[:, rng.permutation(d)]


def test_r2_is_one_for_a_linear_map_of_the_embedding_and_about_zero_for_an_independent_one():
    rng = np.random.default_rng(0)
    z_train, z_test = rng.normal(size=(N, 4)), rng.normal(size=(N, 4))
    a, shift = random_map(rng, 4), rng.normal(size=4)
    assert linear_r2(z_train, z_train @ a + shift, z_test, z_test @ a + shift) == pytest.approx(np.ones(4), abs=1e-9)
    # independent embeddings: held-out R² ~ -D/N ± sqrt(2D)/N per target (about -0.01 ± 0.007 here)
    other_train, other_test = rng.normal(size=(N, 4)), rng.normal(size=(N, 4))
    assert np.abs(linear_r2(z_train, other_train, z_test, other_test)).max() < 0.05
    # half of each target's variance shared: R² ~ 0.5, so the measure grades between the two
    half = linear_r2(z_train, (z_train + other_train) @ a, z_test, (z_test + other_test) @ a)
    assert np.all(np.abs(half - 0.5) < 0.15)


def test_collapsed_latents_barely_count_in_the_variance_weighted_r2():
    """A VAE's collapsed latent (posterior mean ~ constant, what is left is noise) is unpredictable:
    it halves CEBRA's plain mean over latents but not the variance-weighted R²."""
    rng = np.random.default_rng(1)
    z = {s: rng.normal(size=(N, 1)) for s in ("train", "test")}
    runs = {s: {"a": np.column_stack([z[s], 1e-2 * rng.normal(size=(N, 1))]),
                "b": np.column_stack([-2 * z[s], 1e-2 * rng.normal(size=(N, 1))])} for s in ("train", "test")}
    table = pair_table(runs["train"], runs["test"], "a", "b")
    assert set(zip(table["source"], table["target"])) == {("a", "b"), ("b", "a")}
    weighted, uniform = summarise_r2(table[table["source"] == "a"])
    assert weighted > 0.99 and uniform < 0.55


def test_ari_is_one_for_the_same_grouping_and_about_zero_for_permuted_units():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(1, 5), 15)  # 60 units in 4 clusters
    renamed = np.array([0, 3, 1, 4, 2])[labels]  # the same grouping under other cluster numbers
    permuted = [cluster_agreement({"a": labels, "b": rng.permutation(labels)}).loc["a", "b"] for _ in range(50)]
    assert cluster_agreement({"a": labels, "b": renamed}).loc["a", "b"] == 1.0
    # ARI of independent labelings has mean 0; its SD for 60 units in 4 groups is ~0.02
    assert abs(np.mean(permuted)) < 0.02 and max(permuted) < 0.15


def planted_units(rng, z, n_per_group=10):
    """Rates of 3 groups of units, each driven by one latent (latents 0, 1, 2 of z), with noise."""
    drive = np.repeat(np.eye(3), n_per_group, axis=0)  # (30, 3)
    return np.exp(0.5 * z[:, :3] @ drive.T + 0.3 * rng.normal(size=(len(z), len(drive)))), np.repeat([1, 2, 3], n_per_group)


def test_unit_clusters_on_whitened_profiles_ignore_linear_maps_of_the_latents():
    """The same latent space up to an invertible linear map (and a collapsed latent, dropped as
    inactive) gives the same clusters of units; an unrelated embedding does not. A map that mixes
    the latents strongly changes the clusters of the raw correlation profiles (the analysis's
    cluster_on=latents), not those of the whitened ones."""
    rng = np.random.default_rng(3)
    z = np.column_stack([rng.normal(size=(N, 3)), 1e-3 * rng.normal(size=(N, 1))])
    rates, truth = planted_units(rng, z)
    mapped = z[:, :3] @ random_map(rng, 3) + 5.0
    mixed = z[:, :3] @ np.array([[1.0, 1.0, 1.0], [0.0, 0.25, 0.0], [0.0, 0.0, 0.25]])  # z0, z0 + z1/4, z0 + z2/4
    labels = {name: cluster_profiles(whitened_profiles(e, rates))["labels"]
              for name, e in (("z", z), ("mapped", mapped), ("mixed", mixed), ("other", rng.normal(size=(N, 3))))}
    assert whitened_profiles(z, rates).shape == (30, 3)  # the collapsed latent is not active
    ari = cluster_agreement({"truth": truth, **labels})
    assert ari.loc["truth", "z"] == 1.0 and ari.loc["z", "mapped"] == 1.0 and ari.loc["z", "mixed"] == 1.0
    assert ari.loc["z", "other"] < 0.3
    raw = {name: cluster_profiles(correlation(e, rates).T)["labels"] for name, e in (("z", z), ("mixed", mixed))}
    assert cluster_agreement(raw).loc["z", "mixed"] < 0.9


def test_cli_needs_two_trained_models(tmp_path, capsys):
    missing = tmp_path / "nomodel"
    assert cli_main(["consistency", str(tmp_path / "dataset.nc"), str(missing), str(missing),
                     "--out", str(tmp_path / "out")]) == 2
    assert "config.json: file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_report_section_shows_the_matrices_and_nothing_without_seeds(tmp_path):
    import json

    import jinja2

    from mmneuro.report.consistency import consistency_context

    summary = {"runs": ["seed0", "seed1"], "split": "test", "conditioning": "audio", "n_test": 146, "n_units": 42,
               "n_tuned": 36, "active_latents": {"seed0": 16, "seed1": 15}, "clusters_k": {"seed0": 6, "seed1": 5},
               "mean": {"r2": 0.6979, "r2_uniform": 0.68, "ari": None, "similarity_r": 0.986},
               "r2": [[1.0, 0.6761], [0.7022, 1.0]], "r2_uniform": [[1.0, 0.66], [0.68, 1.0]],
               "ari": [[None, None], [None, None]], "similarity_r": [[1.0, 0.986], [0.986, 1.0]]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    env = jinja2.Environment(loader=jinja2.PackageLoader("mmneuro.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    html = env.get_template("consistency.html").render(m={"consistency": consistency_context(tmp_path)})
    assert "Consistency across seeds" in html and "R² 0.698 (uniform 0.680), ARI –" in html
    assert "<th>seed1</th><td>0.702</td><td>1.000</td>" in html and "seed1: 15" in html
    assert env.get_template("consistency.html").render(m={"consistency": consistency_context(tmp_path / "none")}).strip() == ""

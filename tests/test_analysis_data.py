"""pipeline.analysis_data: the syllables, model inputs and count windows analyse scores a model on."""

import numpy as np
import pytest

from mmneuro.analysis.settings import AnalysisSettings
from mmneuro.errors import InputError
from mmneuro.io import read_netcdf
from test_analysis_pipeline import FAST, planted_world, train_small_model


def test_analysis_data_is_what_analyse_scores(tmp_path):
    from mmneuro.analysis import analyse
    from mmneuro.analysis.pipeline import analysis_data
    from mmneuro.models import load_model

    dataset, _, _ = planted_world(tmp_path, n_per_session=60, units_per_cluster=1)
    model, ds = load_model(train_small_model(tmp_path, dataset, steps=5)), read_netcdf(dataset)
    settings = AnalysisSettings().replace(dict(a.split("=") for a in FAST))
    used = analyse(model, ds, settings=settings, progress=False).context.data
    data = analysis_data(ds, model, settings)
    assert list(data.ds["syllable"].values) == list(used.ds["syllable"].values)
    assert set(data.ds["split"].values) == {"test"} and set(data.train["split"].values) == {"train"}
    for m in model.modalities:
        assert np.array_equal(data.x[m], used.x[m]) and np.array_equal(data.x_train[m], used.x_train[m])
    assert np.array_equal(data.counts, used.counts) and np.array_equal(data.exposure_s, used.exposure_s)
    # default settings: the test split, as analyse's defaults
    assert list(analysis_data(ds, model).ds["syllable"].values) == list(data.ds["syllable"].values)
    everything = analysis_data(ds, model, AnalysisSettings(split="all"))
    assert everything.ds.sizes["syllable"] == ds.sizes["syllable"]
    with pytest.raises(InputError, match="few.nc"):  # too few syllables: the error names `where`
        analysis_data(ds.isel(syllable=slice(0, 12)), model, settings, "few.nc")

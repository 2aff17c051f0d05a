"""Sessions with their own sorts (issue 20): per-session views and a cross-session unit matching.

A dataset whose sessions were sorted separately (mmneuro.dataset, ``units: own``) has one ``unit``
axis, the union of every sort's units, with NaN counts where a unit was not recorded. Per-session
analyses run on :func:`session_view` (the session's syllables and its own units, NaN-free), so every
single-session analysis applies unchanged. :func:`match_units` follows units across sessions
through the shared latent space: a model trained on all sessions decodes every unit's rate from
the latent of every syllable (also of the days the unit was not recorded), and two units of
different sessions whose decoded rates agree over all syllables encode the same latent dimensions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.dataset import SHARED_SORT, recorded_units


def session_view(ds: xr.Dataset, session: str) -> xr.Dataset:
    """The syllables of ``session`` and the units its sort recorded, with ``unit`` relabelled by the
    sorter's ids (``unit_id``) where the dataset has them."""
    units = recorded_units(ds)[session]
    view = ds.isel(syllable=np.flatnonzero(ds["session"].values == session), unit=units)
    if "unit_id" in view.coords:
        view = view.assign_coords(unit=view["unit_id"].values).drop_vars(["unit_id", "unit_session"])
    return view


def decoded_rates(model, ds: xr.Dataset, given: tuple[str, ...] = ("audio",), batch_size: int = 256) -> np.ndarray:
    """Mean decoded neural rates (N syllables, U units of the union) at each syllable's posterior
    mean given ``given`` (default: the audio alone, which every session shares)."""
    import torch

    from mmneuro.analysis.embed import posterior_moments
    from mmneuro.inputs import batches, model_inputs

    x = model_inputs(ds, model, present_only=True)
    mean, _ = posterior_moments(model, x, given, batch_size)
    with torch.no_grad():
        rates = [model.decode_mean(torch.from_numpy(mean[sl]), "neural").numpy()
                 for sl in batches(len(mean), batch_size)]
    rates = np.concatenate(rates)
    return rates.reshape(len(rates), rates.shape[1], -1).sum(-1)  # counts: summed over bins


def rate_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity (A, B) of the decoded rates a (N, A) and b (N, B) (expected counts per syllable)
    over the same N syllables: exp(-RMS over syllables of (sqrt a - sqrt b)), 1 for identical rate
    functions. The square root makes Poisson noise equal at every rate (Anscombe), so that neither
    silent syllables (as with log rates) nor the peak (as with rates) dominate; unlike a correlation,
    the distance sees baseline and gain as well as the tuning's shape, which tell neurons of one
    tuning cluster apart."""
    sa, sb = np.sqrt(np.maximum(a, 0.0)), np.sqrt(np.maximum(b, 0.0))
    sq = (sa ** 2).mean(0)[:, None] + (sb ** 2).mean(0)[None] - 2.0 * (sa.T @ sb) / len(sa)
    return np.exp(-np.sqrt(np.maximum(sq, 0.0)))


def match_units(rates: np.ndarray, ds: xr.Dataset) -> pd.DataFrame:
    """For every pair of sessions (a, b) with their own sorts, the one-to-one assignment of a's
    units to b's (Hungarian algorithm, scipy.optimize.linear_sum_assignment) that maximises the
    summed :func:`rate_similarity` of their decoded rates ``rates`` (N, U) over all syllables.

    Returns a table with session_a, unit_a, session_b, unit_b (the sorters' ids), score (the
    similarity) and matched, one row per assigned pair. Every unit of the smaller sort gets a
    partner, also one recorded on one day only; ``matched`` keeps the pairs that are each other's
    most similar unit (mutual nearest neighbours), a rule without a scale-dependent threshold.
    """
    units = {s: u for s, u in recorded_units(ds).items() if len(u)}
    ids = ds["unit_id"].values if "unit_id" in ds.coords else ds["unit"].values
    sorts = ds["unit_session"].values if "unit_session" in ds.coords else np.zeros(ds.sizes["unit"])
    rows = []
    names = list(units)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ua, ub = units[a], units[b]
            if sorts[ua[0]] == sorts[ub[0]]:
                continue  # one sort: the same id is the same unit
            rows += _assigned_pairs(rates[:, ua], rates[:, ub], (a, ids[ua]), (b, ids[ub]))
    return pd.DataFrame(rows, columns=MATCHING_COLUMNS)


MATCHING_COLUMNS = ["session_a", "unit_a", "session_b", "unit_b", "score", "matched"]


def _assigned_pairs(rates_a: np.ndarray, rates_b: np.ndarray, a: tuple, b: tuple) -> list[dict]:
    """:func:`match_units`' rows for two sorts: ``a``/``b`` = (session, unit ids) of the rates' columns."""
    from scipy.optimize import linear_sum_assignment

    score = rate_similarity(rates_a, rates_b)
    ra, rb = linear_sum_assignment(-score)
    mutual = (score.argmax(1)[ra] == rb) & (score.argmax(0)[rb] == ra)
    return [{"session_a": a[0], "unit_a": int(a[1][p]), "session_b": b[0], "unit_b": int(b[1][q]),
             "score": float(score[p, q]), "matched": bool(m)} for p, q, m in zip(ra, rb, mutual)]


def match_new_units(rates: np.ndarray, ds: xr.Dataset, new_rates: np.ndarray, new_ids: np.ndarray,
                    session: str) -> pd.DataFrame:
    """:func:`match_units` of a new session's units (``new_rates`` (N, U_new), sorter ids ``new_ids``)
    against each sort of the units ``rates`` (N, U) of the dataset ``ds`` a model was trained on,
    decoded over the same N syllables: one sort per session with its own units (``unit_session``),
    ``shared`` for the rest. Rows as :func:`match_units`, with the training sort as session_a."""
    ids = ds["unit_id"].values if "unit_id" in ds.coords else ds["unit"].values
    sorts = ds["unit_session"].values if "unit_session" in ds.coords else np.full(ds.sizes["unit"], SHARED_SORT)
    rows = []
    for sort in dict.fromkeys(sorts.tolist()):
        mine = np.flatnonzero(sorts == sort)
        rows += _assigned_pairs(rates[:, mine], new_rates, (sort, ids[mine]), (session, np.asarray(new_ids)))
    return pd.DataFrame(rows, columns=MATCHING_COLUMNS)


def matching_recall(table: pd.DataFrame, truth: dict) -> dict:
    """Score a matching against planted identities (mmneuro.synth.multiday truth ``units``: session
    -> {unit id: neuron}, ``neurons``: [{"band"}]): ``recall`` (truly shared pairs found and matched),
    ``precision`` (matched pairs that are the same neuron), ``same_band`` (matched pairs whose neurons
    share a planted band: the functional cluster is followed), and the counts."""
    same = [truth["units"][r.session_a][r.unit_a] == truth["units"][r.session_b][r.unit_b]
            for r in table.itertuples()]
    band = [truth["neurons"][truth["units"][r.session_a][r.unit_a]]["band"]
            == truth["neurons"][truth["units"][r.session_b][r.unit_b]]["band"] for r in table.itertuples()]
    in_band = int(np.sum(np.asarray(band, bool) & table["matched"].values)) if len(table) else 0
    found = int(np.sum(np.asarray(same, bool) & table["matched"].values)) if len(table) else 0
    shared = sum(len(set(truth["units"][a].values()) & set(truth["units"][b].values()))
                 for a, b in {(r.session_a, r.session_b) for r in table.itertuples()})
    n_matched = int(table["matched"].sum()) if len(table) else 0
    return {"shared_pairs": shared, "found": found, "matched": n_matched,
            "recall": found / shared if shared else float("nan"),
            "precision": found / n_matched if n_matched else float("nan"),
            "same_band": in_band / n_matched if n_matched else float("nan")}


def session_model(model, units: np.ndarray):
    """The part of ``model`` that one session uses: a copy whose neural expert reads and decodes only
    ``units`` (indices along the union's ``unit``), i.e. that session's read-in columns and read-out
    rows. On that session's syllables (:func:`session_view`) it computes exactly what ``model``
    computes on the union with NaN elsewhere, so every single-session analysis applies to it."""
    units = np.asarray(units)
    old = model.experts["neural"]
    n_units, per_unit = old.shape[0], int(np.prod(old.shape[1:], dtype=int))
    flat = (units[:, None] * per_unit + np.arange(per_unit)).ravel()  # the units' elements, flattened
    new = with_unit_count(model, len(units))
    state = model.state_dict()
    for key in unit_parameters(model):
        value, target = state[key], new.state_dict()[key]
        for dim, (a, b) in enumerate(zip(value.shape, target.shape)):
            if a != b:
                index = flat if a == n_units * per_unit and per_unit > 1 else units
                value = value.index_select(dim, torch_index(index))
        state[key] = value
    new.load_state_dict(state)
    return new.train(model.training)


def with_unit_count(model, n_units: int):
    """A new model of ``model``'s config (fresh weights) whose neural expert has ``n_units`` units."""
    import copy

    from mmneuro.models import MultimodalVAE

    config = copy.deepcopy(model.config)
    config.modalities["neural"].shape = [int(n_units), *model.experts["neural"].shape[1:]]
    return MultimodalVAE(config)


def unit_parameters(model) -> list[str]:
    """The state-dict keys of ``model`` whose shape depends on its neural unit count: the neural
    encoder's first-layer weight (the read-in), the decoder's last layer (the read-out) and any
    per-unit likelihood parameter. Found by building the model with one unit more (on the meta
    device: no memory, no random numbers), so a hidden size equal to the unit count is no trap."""
    import torch

    with torch.device("meta"):
        other = with_unit_count(model, model.experts["neural"].shape[0] + 1).state_dict()
    return [k for k, v in model.state_dict().items() if other[k].shape != v.shape]


def torch_index(index: np.ndarray):
    import torch

    return torch.as_tensor(index, dtype=torch.long)


def analyse_sessions(model, ds: xr.Dataset, **kwargs) -> dict:
    """:func:`mmneuro.analysis.analyse` of a model trained on sessions with their own sorts, once per
    session with neural data (its :func:`session_model` on its :func:`session_view`; ``kwargs`` go
    to ``analyse``). Returns {session: AnalysisResult} and, under ``"unit_matching"``, the
    :func:`match_units` table."""
    from mmneuro.analysis.pipeline import analyse

    model = getattr(model, "model_", model)
    out = {sid: analyse(session_model(model, units), session_view(ds, sid), **kwargs)
           for sid, units in recorded_units(ds).items() if len(units)}
    out["unit_matching"] = match_units(decoded_rates(model, ds), ds)
    return out


MATCHING_FILE = "unit_matching.csv"


def write_sessions(model, ds: xr.Dataset, out_dir, **kwargs):
    """:func:`analyse_sessions`, written to ``out_dir``: ``sessions/<session>/`` (each an analysis
    folder, AnalysisResult.write) and ``unit_matching.csv``. Returns ``out_dir``."""
    from pathlib import Path

    from mmneuro.io import atomic_path

    out_dir = Path(out_dir)
    results = analyse_sessions(model, ds, **kwargs)
    table = results.pop("unit_matching")
    for sid, result in results.items():
        result.write(out_dir / "sessions" / sid)
    with atomic_path(out_dir / MATCHING_FILE) as tmp:
        table.to_csv(tmp, index=False)
    return out_dir

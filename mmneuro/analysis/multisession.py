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

from mmneuro.dataset import recorded_units


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


TUNING_RANKS = (2, 3, 4, 6, 8, 12, 16)  # candidate basis sizes; the held-out deviance picks one
TUNING_RIDGE = 1.0  # L2 penalty on the standardised components' coefficients (the intercept is free)


def tuning_rates(rates: np.ndarray, ds: xr.Dataset, neural_input: str, ranks: tuple[int, ...] = TUNING_RANKS,
                 fit_rows: np.ndarray | None = None) -> np.ndarray:
    """Each unit's expected count on every syllable (N, U) from a Poisson regression of the unit's
    own counts on the leading principal components of the model's log decoded ``rates`` (N, U).

    The decoder gives every unit a rate over the shared latent, but its read-out row (one weight per
    hidden feature) is fitted by the ELBO among everything else and is noisy for one unit: on
    mmneuro.synth.multiday data it matched 65-81 % of the shared neurons where a fit of the true
    tuning curve matched 81-95 % (docs/multisession.md). The components are the few directions in
    which the model's rates vary over syllables (shared by all sessions); a GLM on k of them has
    k + 1 parameters per unit. k is the one of ``ranks`` with the lowest Poisson deviance on the
    validation syllables when fitted on the training syllables (all units together); the final fit
    uses every syllable of the unit's session (``fit_rows``: only those syllables' counts are used).
    Exposure: the spike window's length (window_counts).
    """
    from mmneuro.inputs import latency_s, window_counts

    counts, exposure, _ = window_counts(ds, neural_input, latency_s(ds))
    log_rates = np.log(np.maximum(rates, 1e-6))
    left, values, _ = np.linalg.svd(log_rates - log_rates.mean(0), full_matrices=False)
    ranks = [k for k in ranks if k <= len(values)] or [len(values)]
    split = ds["split"].values.astype(str) if "split" in ds.coords else np.where(np.arange(len(counts)) % 5, "train", "val")
    observed = np.isfinite(counts) & (True if fit_rows is None else np.asarray(fit_rows, bool)[:, None])
    offset = np.log(np.maximum(exposure, 1e-9))

    def design(k):
        x = left[:, :k] * values[:k]
        return np.column_stack([np.ones(len(x)), (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)])

    def deviance(k):
        x = design(k)
        beta = _poisson_glm(x, counts, offset, observed & (split == "train")[:, None])
        held = observed & (split == "val")[:, None]
        mu = np.exp(offset[:, None] + x @ beta.T)
        c = np.where(held, counts, 0.0)
        return float(np.sum(np.where(held, mu - c + c * np.log(np.where(c > 0, c, 1.0) / mu), 0.0)))

    best = min(ranks, key=deviance) if (split == "val").any() else ranks[len(ranks) // 2]
    x = design(best)
    return np.exp(offset[:, None] + x @ _poisson_glm(x, counts, offset, observed).T)


def _poisson_glm(x: np.ndarray, counts: np.ndarray, offset: np.ndarray, fit: np.ndarray,
                 ridge: float = TUNING_RIDGE, iterations: int = 50) -> np.ndarray:
    """Coefficients (U, P) of a log-link Poisson regression of every column of ``counts`` (N, U) on
    ``x`` (N, P, first column the intercept) with log exposure ``offset`` (N,), each unit fitted on its
    rows where ``fit`` (N, U) is set: Newton's method for all units at once, an L2 penalty
    ``ridge`` on all but the intercept, each unit's step scaled down to at most 1 per coefficient
    (it binds only far from the optimum, in the first iterations)."""
    w = fit.astype(float)
    c = np.where(fit, counts, 0.0)
    penalty = np.full(x.shape[1], ridge)
    penalty[0] = 0.0
    beta = np.zeros((counts.shape[1], x.shape[1]))
    beta[:, 0] = np.log(np.maximum(c.sum(0), 0.5) / np.maximum((w * np.exp(offset)[:, None]).sum(0), 1e-9))
    outer = (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)  # (N, P*P): every unit's Hessian in one matmul
    for _ in range(iterations):
        mu = np.exp(np.minimum(offset[:, None] + x @ beta.T, 30.0)) * w
        grad = x.T @ (c - mu) - (penalty * beta).T  # (P, U)
        hess = (mu.T @ outer).reshape(-1, x.shape[1], x.shape[1]) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad.T[..., None])[..., 0]
        step *= np.minimum(1.0, 1.0 / np.maximum(np.abs(step).max(1, keepdims=True), 1e-12))
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return beta


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


def match_units(rates: np.ndarray, ds: xr.Dataset, self_scores: np.ndarray | None = None) -> pd.DataFrame:
    """For every pair of sessions (a, b) with their own sorts, a one-to-one assignment of a's units
    to b's by the :func:`rate_similarity` of their decoded rates ``rates`` (N, U) over all syllables:
    mutual nearest neighbours, the rest by the Hungarian algorithm (:func:`mutual_assignment`).

    Returns a table with session_a, unit_a, session_b, unit_b (the sorters' ids), score (the
    similarity) and matched, one row per assigned pair. Every unit of the smaller sort gets a
    partner, also one recorded on one day only; ``matched``: the pairs that are each other's most
    similar unit (mutual nearest neighbours, all of them kept: :func:`mutual_assignment`), a rule
    without a scale-dependent threshold.
    ``self_scores`` (U,): each unit's similarity to itself measured twice (:func:`unit_matching`); with
    it, the columns self_score (the lower of the pair's two) and confident (matched, and as similar as
    either unit is to itself: what one neuron recorded twice would give).
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
            rows += _assigned_pairs(rates[:, ua], rates[:, ub], (a, ids[ua]), (b, ids[ub]),
                                    None if self_scores is None else (self_scores[ua], self_scores[ub]))
    extra = [] if self_scores is None else ["self_score", "confident"]
    return pd.DataFrame(rows, columns=[*MATCHING_COLUMNS, *extra])


MATCHING_COLUMNS = ["session_a", "unit_a", "session_b", "unit_b", "score", "matched"]


def _assigned_pairs(rates_a: np.ndarray, rates_b: np.ndarray, a: tuple, b: tuple,
                    self_scores: tuple | None = None) -> list[dict]:
    """:func:`match_units`' rows for two sorts: ``a``/``b`` = (session, unit ids) of the rates' columns,
    ``self_scores`` their units' self-similarities (or None)."""
    score = rate_similarity(rates_a, rates_b)
    ra, rb, mutual = mutual_assignment(score)
    return [{"session_a": a[0], "unit_a": int(a[1][p]), "session_b": b[0], "unit_b": int(b[1][q]),
             "score": float(score[p, q]), "matched": bool(m),
             **({} if self_scores is None else
                _confidence(score[p, q], m, np.array([self_scores[0][p], self_scores[1][q]])))}
            for p, q, m in zip(ra, rb, mutual)]


def mutual_assignment(score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-to-one assignment of rows to columns of ``score`` (A, B) that keeps every pair of mutual
    nearest neighbours (each the other's highest score) and assigns the other rows by the Hungarian
    algorithm (maximal summed score) among the other columns. Returns (rows, columns, mutual).

    Why not the Hungarian assignment of all: it can trade a mutual pair for two mediocre ones (a
    neighbour with nearly the same tuning takes the partner); on mmneuro.synth.multiday data it
    split 4-14 % of the truly shared pairs (per seed; docs/multisession.md)."""
    from scipy.optimize import linear_sum_assignment

    best_b, best_a = score.argmax(1), score.argmax(0)
    mutual_a = np.flatnonzero(best_a[best_b] == np.arange(len(best_b)))
    rest_a = np.setdiff1d(np.arange(score.shape[0]), mutual_a)
    rest_b = np.setdiff1d(np.arange(score.shape[1]), best_b[mutual_a])
    p, q = linear_sum_assignment(-score[np.ix_(rest_a, rest_b)])
    return (np.concatenate([mutual_a, rest_a[p]]), np.concatenate([best_b[mutual_a], rest_b[q]]),
            np.arange(len(mutual_a) + len(p)) < len(mutual_a))


def _confidence(score: float, matched: bool, self_scores: np.ndarray) -> dict:
    least = float(self_scores.min())
    return {"self_score": least, "confident": bool(matched and score >= least)}


def matching_recall(table: pd.DataFrame, truth: dict) -> dict:
    """Score a matching against planted identities (mmneuro.synth.multiday truth ``units``: session
    -> {unit id: neuron}, ``neurons``: [{"band"}]): ``recall`` (truly shared pairs found and matched),
    ``precision`` (matched pairs that are the same neuron), ``same_band`` (matched pairs whose neurons
    share a planted band: the functional cluster is followed), and the counts. Per unit instead of
    per pair (a unit of one session whose neuron another session of the table recorded too):
    ``unit_recall``, matched to its neuron on at least one other session (it can be followed across
    days), and ``unit_recall_all``, on every other session that recorded it."""
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
            "same_band": in_band / n_matched if n_matched else float("nan"), **_unit_recall(table, truth)}


def _unit_recall(table: pd.DataFrame, truth: dict) -> dict:
    """:func:`matching_recall`'s per-unit scores: partners[(session, unit)] = the other sessions of
    ``table`` that recorded its neuron, found[(session, unit)] = those where it is matched to it."""
    units = truth["units"]
    partners, found = {}, {}
    for a, b in {(r.session_a, r.session_b) for r in table.itertuples()}:
        for s, t in ((a, b), (b, a)):
            for u, neuron in units[s].items():
                if neuron in units[t].values():
                    partners.setdefault((s, u), set()).add(t)
    for r in table[table["matched"]].itertuples() if len(table) else []:
        if units[r.session_a][r.unit_a] == units[r.session_b][r.unit_b]:
            found.setdefault((r.session_a, r.unit_a), set()).add(r.session_b)
            found.setdefault((r.session_b, r.unit_b), set()).add(r.session_a)
    any_found = sum(bool(found.get(k)) for k in partners)
    all_found = sum(v <= found.get(k, set()) for k, v in partners.items())
    n = len(partners)
    return {"shared_units": n, "unit_recall": any_found / n if n else float("nan"),
            "unit_recall_all": all_found / n if n else float("nan")}


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


def unit_matching(model, ds: xr.Dataset) -> pd.DataFrame:
    """:func:`match_units` on the :func:`tuning_rates` of the model's audio-decoded rates, with each
    unit's self-similarity: its rates fitted on the even and on the odd syllables, compared."""
    from mmneuro.inputs import neural_input_of

    return rates_matching(decoded_rates(model, ds), ds, neural_input_of(model))


def rates_matching(rates: np.ndarray, ds: xr.Dataset, neural_input: str) -> pd.DataFrame:
    """:func:`unit_matching` of decoded ``rates`` (N, U) of ``ds``'s syllables and units (also rates
    of several models: mmneuro.apply.readin.match_to_training)."""
    even = np.arange(len(rates)) % 2 == 0
    halves = [tuning_rates(rates, ds, neural_input, fit_rows=rows) for rows in (even, ~even)]
    self_scores = np.array([rate_similarity(halves[0][:, [u]], halves[1][:, [u]])[0, 0] for u in range(rates.shape[1])])
    return match_units(tuning_rates(rates, ds, neural_input), ds, self_scores)


def analyse_sessions(model, ds: xr.Dataset, **kwargs) -> dict:
    """:func:`mmneuro.analysis.analyse` of a model trained on sessions with their own sorts, once per
    session with neural data (its :func:`session_model` on its :func:`session_view`; ``kwargs`` go
    to ``analyse``). Returns {session: AnalysisResult} and, under ``"unit_matching"``, the
    :func:`match_units` table."""
    from mmneuro.analysis.pipeline import analyse

    model = getattr(model, "model_", model)
    out = {sid: analyse(session_model(model, units), session_view(ds, sid), **kwargs)
           for sid, units in recorded_units(ds).items() if len(units)}
    out["unit_matching"] = unit_matching(model, ds)
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

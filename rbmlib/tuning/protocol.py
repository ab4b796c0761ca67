"""A preset as a pre-registered protocol: its digest, and the locks around the test look.

A protocol fixes the models, their search spaces, the budgets, the pruner, the
seeds and the evaluation: everything in a :class:`~rbmlib.tuning.presets.Preset`.
:func:`digest` condenses it to twelve hex digits, stored with every study (user
attribute ``protocol_digest``) and every row of the test-set ledger, so a
reader can check that the numbers came from the protocol the paper describes.

The locks, each a one-line refusal:

* :func:`check_open` (tuning): once a protocol has a test look, its studies are
  closed. More trials, a wider range, a new model: a new protocol.
* :func:`check_ready` (evaluation): the test split is read only when every study
  of the protocol has its budget (finished and complete trials), was tuned
  under the protocol as the code states it now, and has no best value on an
  edge of its range (:func:`edges`) nor a best epoch at its cap. So no test score
  is seen while any model may still change. An edge that the protocol states
  as a resource limit (the preset's ``resource_limits``, stated before the
  studies end) does not hold the look up; it becomes a caveat of the model's
  verdicts (:func:`resource_limited`).
* A second look at the same (protocol, model, seed) is refused by the ledger
  (:func:`rbmlib.tuning.ledger.check_unscored`).

Before the test look, a protocol may still change (a range widened because its
best value sat on the edge): :func:`record_digest` keeps each study's history
of digests, with the number of trials run under each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Mapping

import optuna
from optuna.distributions import CategoricalDistribution, distribution_to_json
from optuna.trial import TrialState

from rbmlib.models import get_model, model_steps
from rbmlib.tuning import ledger

#: Fields that say how a run is operated or named, not what it computes.
_OPERATIONAL = ("heartbeat_interval", "label")

#: Ends of a range that cannot be widened (a dropout of 0, all 784 components):
#: a best value there is not a sign of too narrow a range.
NATURAL_LIMITS = {"dropout": (0.0, None), "pca__n_components": (None, 784)}


class ProtocolLockedError(ValueError):
    """A change, or more tuning, asked of a protocol that has looked at the test set."""


class NotReadyError(ValueError):
    """A test look asked of a protocol whose studies are not finished."""


def space_distributions(space, preset) -> dict:
    """``{parameter: optuna distribution}`` that a search-space function suggests from.

    The spaces have no conditional parameters, so one trial of a throwaway
    in-memory study draws from all of them.
    """
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not one "study created" line per call
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        space(trial, preset)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return dict(trial.distributions)


def describe(preset) -> dict:
    """The protocol as plain data: preset fields, every model's make-up and search space."""
    fields = {f.name: getattr(preset, f.name) for f in dataclasses.fields(preset)
              if f.name not in ("spaces", *_OPERATIONAL)}
    if not fields["equal_finished"]:  # added later: the presets without it keep their digests
        del fields["equal_finished"]
    models = {}
    for model in preset.models:
        models[model] = {
            "steps": model_steps(model),
            "fixed_params": preset.fixed_params(model),
            "space": {name: json.loads(distribution_to_json(dist)) for name, dist in
                      sorted(space_distributions(preset.spaces[model], preset).items())},
        }
    return {"preset": fields, "models": models}


def digest(preset) -> str:
    """Twelve hex digits of :func:`describe`: equal digests, equal protocols."""
    text = json.dumps(describe(preset), sort_keys=True, default=list)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


# ----------------------------------------------------------------------------- locks

def is_open(preset) -> bool:
    """Whether ``preset`` may still change: not pre-registered, or without a test look yet."""
    return not preset.preregistered or not len(ledger.read(preset.name))


def check_open(preset) -> None:
    """Refuse to tune a pre-registered protocol that has looked at the test set."""
    if is_open(preset):
        return
    looks = ledger.read(preset.name)
    raise ProtocolLockedError(
        f"The {preset.name} protocol was scored on the test split ({len(looks)} looks, the first "
        f"on {str(looks['time'].iloc[0])[:10]}): its studies are closed, so that no test score can "
        "steer them. To tune more or differently, define a new preset (a new protocol) in "
        "rbmlib/tuning/presets.py.")


def record_digest(study: optuna.Study, preset) -> str:
    """Store the protocol's current digest on ``study``; a change is added to its history.

    Call before running trials (after :func:`check_open`). Returns the digest.
    """
    current = digest(preset)
    history = list(study.user_attrs.get("protocol_digests", []))
    if not history or history[-1]["digest"] != current:
        history.append({"digest": current, "from_trial": len(study.get_trials(deepcopy=False))})
        study.set_user_attr("protocol_digests", history)
    study.set_user_attr("protocol_digest", current)
    return current


def check_ready(preset, studies: dict) -> str:
    """Refuse a test look unless every study of the protocol is finished; returns the digest.

    Parameters
    ----------
    preset : Preset
    studies : dict of model name -> optuna.Study or None
        Every model of the preset (None: no study yet).

    Raises
    ------
    NotReadyError
        Listing each study that lacks trials, was tuned under another digest,
        or has a best value on an edge.
    """
    current = digest(preset)
    if not preset.preregistered:
        return current
    problems = budget_problems(preset, studies)
    for model in preset.models:
        study = studies.get(model)
        if study is None:
            continue
        complete = counts(study)[1]
        stored = study.user_attrs.get("protocol_digest")
        if stored is not None and stored != current:
            problems.append(f"{model}: tuned under protocol {stored}, the code states {current} "
                            "(run `rbmlib tune` to record the change)")
        if complete and preset.edge_margin is not None:
            problems.extend(f"{model}: {edge}" for edge in edges(study, preset, model))
    if problems:
        raise NotReadyError(f"The {preset.name} protocol is not ready for its test look: "
                            + "; ".join(problems) + ". Tune on (`rbmlib tune --preset "
                            f"{preset.name}`), widening a range whose best value is on its edge.")
    return current


def budget_problems(preset, studies: Mapping) -> list[str]:
    """One line per study of the preset that lacks its budget (:func:`finished_targets`, ``min_complete``);
    empty once every study has it. ``studies``: model -> study, or None where there is none yet."""
    targets = finished_targets(preset, {m: counts(s)[0] for m, s in studies.items() if s is not None})
    problems = []
    for model in preset.models:
        study = studies.get(model)
        if study is None:
            problems.append(f"{model}: no study yet")
        elif any(shortfall(study, targets[model], preset.min_complete)):
            finished, complete = counts(study)
            problems.append(f"{model}: {finished} of {targets[model]} finished trials, "
                            f"{complete} of at least {preset.min_complete} complete")
    return problems


def counts(study: optuna.Study) -> tuple[int, int]:
    """``(finished, complete)``: the study's complete or pruned trials, and its complete ones."""
    trials = study.get_trials(deepcopy=False)
    return (sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials),
            sum(t.state == TrialState.COMPLETE for t in trials))


def finished_targets(preset, finished: Mapping[str, int]) -> dict[str, int]:
    """Finished trials that each of the preset's studies runs to, given those finished so far.

    ``preset.n_trials``; with ``preset.equal_finished``, each raised to the most
    in ``finished`` (model -> finished trials; a study not there yet counts 0),
    so that once the last study has its floor of complete trials every study has
    as many finished ones as the study that needed most.
    """
    if not preset.equal_finished:
        return dict(preset.n_trials)
    most = max(finished.values(), default=0)
    return {model: max(n, most) for model, n in preset.n_trials.items()}


def shortfall(study: optuna.Study, n_trials: int, min_complete: int = 0) -> tuple[int, int]:
    """``(finished, complete)`` trials that the study still lacks for its budget (0, 0 once it has it).

    The budget is ``n_trials`` finished trials of which at least ``min_complete``
    are complete: a study that Hyperband prunes a lot runs on past ``n_trials``.
    """
    finished, complete = counts(study)
    return max(n_trials - finished, 0), max(min_complete - complete, 0)


def positions(study: optuna.Study, preset, model: str, margin: float | None = None) -> list[dict]:
    """Where each best value of ``study`` lies in its range, and whether that is an edge.

    One dict per parameter of the best trial: ``parameter``, ``best``, ``range``
    (as text), ``distribution`` (None for the epoch row), ``position`` (0 at the
    lower end, 1 at the upper, on the log scale for a log range; None for a
    choice), ``edge`` ("lower", "upper" or None) and ``limit`` (True where that
    edge is one of the preset's ``resource_limits``). A model trained in epochs
    adds a row for the best epoch against its cap. ``margin`` defaults to
    ``preset.edge_margin``.
    """
    margin = preset.edge_margin if margin is None else margin
    best = study.best_trial
    space = space_distributions(preset.spaces[model], preset)
    rows = []
    for name, dist in space.items():
        value = best.params.get(name)
        if value is None:
            continue
        side = _edge_side(name, value, dist, margin, NATURAL_LIMITS)
        rows.append({"parameter": name, "best": value, "range": _range(dist), "distribution": dist,
                     "position": _position(value, dist), "edge": side,
                     "limit": side is not None and _edge_side(name, value, dist, margin, preset.resource_limits) is None})
    if get_model(model).has_epochs:
        cap, epoch = preset.n_iter[model], best.user_attrs.get("best_epoch", 0)
        rows.append({"parameter": "best epoch", "best": epoch, "range": f"cap of {cap} epochs",
                     "distribution": None, "position": epoch / cap, "edge": "upper" if epoch >= cap else None,
                     "limit": False})
    return rows


def edges(study: optuna.Study, preset, model: str) -> list[str]:
    """Best values of ``study`` at or near an end of their present range, and a best epoch at its cap.

    Near: within ``preset.edge_margin`` of the range's width, measured on the log
    scale for a log range. Unordered and two-valued choices have no edges;
    :data:`NATURAL_LIMITS` are not edges, nor are the preset's
    ``resource_limits`` (:func:`resource_limited` lists those).
    """
    found = []
    for row in positions(study, preset, model):
        if row["edge"] is None or row["limit"]:
            continue
        if row["parameter"] == "best epoch":
            found.append(f"best epoch {row['best']} is the {row['range']}")
        else:
            found.append(f"best `{row['parameter']}` = {row['best']:g} is at the {row['edge']} end of {row['range']}")
    return found


def resource_limited(study: optuna.Study, preset, model: str) -> list[str]:
    """Best values of ``study`` at one of the preset's ``resource_limits``: past it, the model might do better."""
    return [f"best `{row['parameter']}` = {row['best']:g} is at the resource limit, the {row['edge']} "
            f"end of {row['range']}" for row in positions(study, preset, model) if row["limit"]]


def one_at_a_time(preset, model: str) -> bool:
    """Whether ``model`` searches up to one of the preset's ``resource_limits``.

    Such a limit is what the machine holds beside the other chain's model, so
    two processes of the model at once (two workers on its study, two of its
    refits) might not fit: ``rbmlib tune --join`` and ``rbmlib evaluate --skip-busy``
    run it in one process at a time.
    """
    return bool(set(preset.resource_limits) & set(space_distributions(preset.spaces[model], preset)))


def _position(value, dist) -> float | None:
    if isinstance(dist, CategoricalDistribution):
        return None
    scale = math.log if dist.log else (lambda x: x)
    return (scale(value) - scale(dist.low)) / (scale(dist.high) - scale(dist.low))


def _edge_side(name, value, dist, margin, limits) -> str | None:
    """The end of ``dist`` that ``value`` is at or near, unless ``limits`` (see :data:`NATURAL_LIMITS`) mark it."""
    limit = next((ends for key, ends in limits.items()
                  if name == key or name.endswith("__" + key)), (None, None))
    if isinstance(dist, CategoricalDistribution):
        numbers = [c for c in dist.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        if len(numbers) < 3 or len(numbers) != len(dist.choices):
            return None
        low, high, share = min(numbers), max(numbers), None
        side = "lower" if value == low else "upper" if value == high else None
    else:
        low, high, share = dist.low, dist.high, _position(value, dist)
        side = "lower" if share <= margin else "upper" if share >= 1 - margin else None
    if side == "lower" and limit[0] is not None and low <= limit[0]:
        return None
    if side == "upper" and limit[1] is not None and high >= limit[1]:
        return None
    return side


def _range(dist) -> str:
    if isinstance(dist, CategoricalDistribution):
        return "{" + ", ".join(map(str, dist.choices)) + "}"
    return f"[{dist.low:g}, {dist.high:g}]" + (" (log)" if dist.log else "")

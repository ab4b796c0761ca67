"""Optuna studies: where they live, how they are opened, and how they run.

One study per (preset, model), named ``<preset>/<model>`` (the MLflow
experiment takes the same name). By default it lives in an embedded SQLite
file, ``paths.study_db(preset, model)``; ``storage="postgresql://..."`` puts it
on a server that several workers share.

Resuming is the default: :func:`tune` runs trials until the study holds the
preset's number of *finished* (complete or pruned) trials, so rerunning the same
command after a crash or a kill continues where the study stopped. Each trial
is committed when it ends; a trial that was running when its process died
stops sending heartbeats, is marked failed once ``grace_period`` has passed, and
is queued again with the same parameters.
"""

from __future__ import annotations

import time
import warnings

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from rbmlib import paths
from rbmlib.models import get_model, model_steps
from rbmlib.tuning.objective import Objective, Splits
from rbmlib.tuning.presets import get_preset
from rbmlib.tuning.tracking import TrialLogger, default_tracking_uri, ensure_experiment

#: Trials that count towards a study's target: a verdict on their parameters.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def study_name(preset: str, model: str) -> str:
    """``"<preset>/<model>"``: unique on a shared server, and the MLflow experiment's name."""
    return f"{preset}/{model}"


def default_storage(preset: str, model: str) -> str:
    """SQLite URL of the model's study file under the preset's results folder."""
    db = paths.study_db(preset, model)
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def with_driver(url: str) -> str:
    """``postgresql://...`` -> ``postgresql+psycopg2://...``; other URLs unchanged.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, which the project
    does not install; it pins psycopg2 (``psycopg2-binary``).
    """
    return "postgresql+psycopg2://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def open_storage(url: str, heartbeat_interval: int = 60) -> RDBStorage:
    """An RDB storage with heartbeats, so trials of a killed worker are retried.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://user@host:port/db``).
    heartbeat_interval : int
        Seconds between a running trial's heartbeats; it is declared dead after
        twice that without one.
    """
    if url.startswith("sqlite"):
        # The heartbeat thread and the trial loop write the same file; wait for
        # the lock instead of failing with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}  # survive a server restart between trials
    with warnings.catch_warnings():
        # Heartbeats are "experimental" since Optuna 2.8 and are Optuna's documented
        # way to recover trials of dead workers; the warning says nothing actionable.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            with_driver(url),
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=2 * heartbeat_interval,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
        )


def load_study(model: str, preset, *, storage: str | None = None, seed: int = 0,
               sampler=None, pruner=None, create: bool = True) -> optuna.Study:
    """Open (or create) the study of ``model`` under ``preset``.

    Parameters
    ----------
    model : str
    preset : str or Preset
    storage : str, optional
        Storage URL; default: the preset's SQLite file for this model.
    seed : int
        Seeds the TPE sampler. Mixed with the number of trials already in the
        study, so that a resumed run does not replay the first run's random
        start-up draws. Give parallel workers different seeds.
    sampler, pruner : optional
        Override the preset's ``TPESampler`` / ``MedianPruner`` (tests use this).
    create : bool
        If False, a missing study raises ``KeyError`` instead of being created.
    """
    preset = get_preset(preset)
    name = study_name(preset.name, model)
    if storage is None and not create and not paths.study_db(preset.name, model).exists():
        raise KeyError(f"No study {name!r}: {paths.study_db(preset.name, model)} does not exist.")
    url = storage or default_storage(preset.name, model)
    pruner = pruner or optuna.pruners.MedianPruner(
        n_startup_trials=preset.pruner_n_startup_trials, n_warmup_steps=preset.pruner_n_warmup_steps
    )
    for attempt in range(5):
        try:  # two workers creating the tables of a fresh database can race; retry
            rdb = open_storage(url, preset.heartbeat_interval)
            if not create:
                rdb.get_study_id_from_name(name)  # KeyError if there is no such study
            study = optuna.create_study(storage=rdb, study_name=name, direction="maximize",
                                        pruner=pruner, load_if_exists=True)
            break
        except KeyError:
            raise KeyError(f"No study {name!r} in {url}; run `rbmlib tune --model {model} "
                           f"--preset {preset.name}` first.") from None
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == 4:
                raise
            time.sleep(1 + attempt)
    study.sampler = sampler or optuna.samplers.TPESampler(
        seed=seed * 100_003 + len(study.trials), n_startup_trials=preset.sampler_n_startup_trials
    )
    if create and not study.user_attrs:
        # Tags of every MLflow run in the experiment (tag_study_user_attrs=True).
        study.set_user_attr("model", model)
        study.set_user_attr("preset", preset.name)
        study.set_user_attr("random_state", preset.random_state)
        for key, value in _setup(preset, model).items():
            study.set_user_attr(key, value)
    _check_setup(study, preset, model, url)
    return study


def _setup(preset, model: str) -> dict:
    """What a study's trials depend on besides their parameters: fixed settings and model steps."""
    return {"fixed_params": preset.fixed_params(model), "steps": model_steps(model)}


def _check_setup(study: optuna.Study, preset, model: str, url: str) -> None:
    """Refuse a study whose trials ran under another set-up than the one the code gives now.

    Its trials would not compare with new ones (say, RBMs trained for 10 epochs
    beside RBMs trained for 20, or a network given raw features beside one
    given standardised features), and the final refit would use the new set-up
    with parameters chosen under the old. A study from before a key was stored
    is not checked on that key.
    """
    changed = {key: (study.user_attrs[key], now) for key, now in _setup(preset, model).items()
               if key in study.user_attrs and study.user_attrs[key] != now}
    if changed:
        lines = "; ".join(f"{key} was {old}, is now {now}" for key, (old, now) in changed.items())
        raise ValueError(
            f"Study {study.study_name!r} in {url} was tuned under another set-up ({lines}). Delete "
            "or move that study (for the default storage, its .db file) to tune afresh, or "
            "restore the preset or model."
        )


def n_finished(study: optuna.Study) -> int:
    """Number of complete or pruned trials."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def warm_start(study: optuna.Study, model: str, preset, *, storage: str | None = None) -> list[dict]:
    """Queue the best RBMs of the study of ``model``'s ``warm_start_from`` as the first trials of ``study``.

    The RBM is the expensive part of both RBM models, and those RBMs are already
    trained and cached: the queued trials fix only the ``rbm__`` parameters
    (TPE draws the classifier's), so they cost a classifier fit each, and the two
    classifiers can be compared on the same features. Uses only validation
    scores. Does nothing if that study has no complete trial.

    Returns
    -------
    list of dict
        The RBM parameters queued (already queued ones are not queued twice).
    """
    preset = get_preset(preset)
    try:
        source = load_study(get_model(model).warm_start_from, preset,
                            storage=storage, create=False)
    except KeyError:
        return []
    ranked = sorted(source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                    key=lambda t: t.value, reverse=True)
    rbms = []
    for trial in ranked:
        rbm = {k: v for k, v in trial.params.items() if k.startswith("rbm__")}
        if rbm not in rbms:
            rbms.append(rbm)
    rbms = rbms[:preset.warm_start_rbms]
    for rbm in rbms:
        study.enqueue_trial(rbm, skip_if_exists=True)
    return rbms


def tune(model: str, preset, *, n_trials: int | None = None, storage: str | None = None,
         tracking_uri: str | None = None, seed: int = 0, splits: Splits | None = None,
         sampler=None, pruner=None, show_progress_bar: bool = True) -> optuna.Study:
    """Run ``model``'s study until it holds ``n_trials`` finished trials.

    Parameters
    ----------
    model : str
        One of ``rbmlib.models.MODEL_NAMES``.
    preset : str or Preset
        ``"smoke"``, ``"paper"`` or a :class:`~rbmlib.tuning.presets.Preset`.
    n_trials : int, optional
        Target number of finished trials; default the preset's. Trials already
        in the study count, so rerunning resumes.
    storage : str, optional
        Optuna storage URL; default the preset's SQLite file for the model.
    tracking_uri : str, optional
        MLflow tracking URI; default the preset's ``mlflow.db``.
    seed : int
        Seeds the sampler (see :func:`load_study`); models train with the
        preset's ``random_state`` whatever it is, so trials compare like with like.
    splits : Splits, optional
        Training and validation data (default: loaded from the preset).
    sampler, pruner : optional
        Overrides for tests.
    show_progress_bar : bool
        Optuna's progress bar over trials (epochs get a bar of their own on a terminal).

    Returns
    -------
    optuna.Study
    """
    preset = get_preset(preset)
    target = preset.n_trials[model] if n_trials is None else n_trials
    study = load_study(model, preset, storage=storage, seed=seed, sampler=sampler, pruner=pruner)
    remaining = target - n_finished(study)
    if remaining <= 0:
        return study
    if get_model(model).warm_start_from:
        warm_start(study, model, preset, storage=storage)
    if tracking_uri is None:
        tracking_uri = default_tracking_uri(preset.name)
        ensure_experiment(tracking_uri, study.study_name, paths.preset_dir(preset.name) / "mlartifacts")
    else:
        tracking_uri = with_driver(tracking_uri)  # MLflow's SQL stores use SQLAlchemy too
        ensure_experiment(tracking_uri, study.study_name)
    objective = Objective(model, preset, splits=splits)
    study.optimize(
        objective,
        n_trials=remaining,
        callbacks=[
            TrialLogger(tracking_uri),
            # Another worker on the same study may finish trials meanwhile.
            optuna.study.MaxTrialsCallback(target, states=FINISHED),
        ],
        gc_after_trial=True,  # free a finished trial's network and buffers before the next
        show_progress_bar=show_progress_bar,
    )
    return study

"""Optuna studies: where they live, how they are opened, and how they run.

One study per (preset, model), named ``<preset>/<model>`` (the MLflow
experiment takes the same name). By default it lives in an embedded SQLite
file, ``paths.study_db(preset, model)``; ``storage="postgresql://..."`` puts it
on a server that several workers share.

Resuming is the default: :func:`tune` runs trials until the study holds the
preset's number of *finished* (complete or pruned) trials, with at least the
preset's ``min_complete`` of them complete, so rerunning the same
command after a crash or a kill continues where the study stopped. Each trial
is committed when it ends; a trial that was running when its process died
stops sending heartbeats, is marked failed once ``grace_period`` has passed, and
is queued again with the same parameters. A finished trial whose process died
before MLflow heard of it is logged by the next :func:`tune`.

Storages are opened by :func:`rbmlib.tuning.stores.open_storage`, which turns
every way a storage can fail into a one-line :class:`StorageError`.
"""

from __future__ import annotations

import datetime
import sys

import optuna
from optuna.trial import TrialState

from rbmlib import paths
from rbmlib.models import get_model, model_steps
from rbmlib.tuning.objective import Objective, Splits
from rbmlib.tuning import deadline, protocol
from rbmlib.tuning.presets import get_preset
from rbmlib.tuning.stores import open_storage, shown, with_driver
from rbmlib.tuning.tracking import TrialLogger, check_tracking, default_tracking_uri, ensure_experiment

#: Trials that count towards a study's target: a verdict on their parameters.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

#: A finished trial without an MLflow run is logged by :func:`tune` only once it
#: finished this many seconds ago: before that, the worker that ran it (another
#: process, perhaps) may still be logging it, and the trial would get two runs.
UNLOGGED_AFTER_S = 30


class MissingStudyError(KeyError):
    """``load_study(..., create=False)`` of a study that does not exist."""

    def __str__(self) -> str:  # KeyError's own quotes the message
        return str(self.args[0])


class SetupChangedError(ValueError):
    """A study tuned under another set-up than the one the code gives now (see :func:`load_study`)."""


def study_name(preset: str, model: str) -> str:
    """``"<preset>/<model>"``: unique on a shared server, and the MLflow experiment's name."""
    return f"{preset}/{model}"


def default_storage(preset: str, model: str) -> str:
    """SQLite URL of the model's study file under the preset's results folder."""
    db = paths.study_db(preset, model)
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def make_sampler(preset, seed: int, n_trials_so_far: int) -> optuna.samplers.BaseSampler:
    """The preset's TPE sampler for a study that already holds ``n_trials_so_far`` trials.

    ``seed`` is mixed with that number, so that a resumed run does not replay
    the first run's random start-up draws.
    """
    return optuna.samplers.TPESampler(seed=seed * 100_003 + n_trials_so_far,
                                      n_startup_trials=get_preset(preset).sampler_n_startup_trials)


def make_pruner(preset, model: str | None = None) -> optuna.pruners.BasePruner:
    """The preset's pruner, which judges a network's validation accuracy per epoch.

    ``"median"`` (protocol 1): stop a trial whose accuracy at an epoch is below
    the median of earlier trials at that epoch. ``"hyperband"`` (protocol 2):
    successive halving in several brackets, from 1 epoch to the model's epoch cap,
    keeping about 1 in ``pruner_reduction_factor`` trials at each rung; the
    brackets hedge between pruning early and late, so no single warm-up length
    has to be guessed. Models without epochs report nothing, and are never pruned.
    """
    preset = get_preset(preset)
    if preset.pruner == "hyperband":
        cap = preset.n_iter.get(model) if model else None
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cap or "auto",
                                              reduction_factor=preset.pruner_reduction_factor)
    return optuna.pruners.MedianPruner(n_startup_trials=preset.pruner_n_startup_trials,
                                       n_warmup_steps=preset.pruner_n_warmup_steps)


def load_study(model: str, preset, *, storage: str | None = None, seed: int = 0,
               create: bool = True) -> optuna.Study:
    """Open (or create) the study of ``model`` under ``preset``.

    Parameters
    ----------
    model : str
    preset : str or Preset
    storage : str, optional
        Storage URL; default: the preset's SQLite file for this model.
    seed : int
        Seeds the sampler (:func:`make_sampler`). Give parallel workers different seeds.
    create : bool
        If False, a missing study raises :class:`MissingStudyError` (a ``KeyError``)
        instead of being created.

    Raises
    ------
    StorageError
        The storage cannot be opened (see :func:`open_storage`).
    SetupChangedError
        The study was tuned under another set-up (a ``ValueError``).
    """
    preset = get_preset(preset)
    if model not in preset.models:
        get_model(model)  # an unknown name gets the registry's message
        raise ValueError(f"Model {model!r} is not part of the {preset.name} preset; its models are "
                         f"{', '.join(preset.models)}.")
    name = study_name(preset.name, model)
    if storage is None and not create and not paths.study_db(preset.name, model).exists():
        raise MissingStudyError(f"No study {name!r}: {paths.study_db(preset.name, model)} does not exist.")
    url = storage or default_storage(preset.name, model)
    rdb = open_storage(url, preset.heartbeat_interval)
    if not create:
        try:
            rdb.get_study_id_from_name(name)
        except KeyError:
            raise MissingStudyError(f"No study {name!r} in {shown(url)}; run `rbmlib tune --model "
                                    f"{model} --preset {preset.name}` first.") from None
    # Two workers creating the same study: the second loads the first's.
    study = optuna.create_study(storage=rdb, study_name=name, direction="maximize",
                                pruner=make_pruner(preset, model), load_if_exists=True)
    study.sampler = make_sampler(preset, seed, len(study.get_trials(deepcopy=False)))
    if create and not study.user_attrs:
        # Tags of every MLflow run in the experiment (tag_study_user_attrs=True).
        study.set_user_attr("model", model)
        study.set_user_attr("preset", preset.name)
        study.set_user_attr("random_state", preset.random_state)
        for key, value in _setup(preset, model).items():
            study.set_user_attr(key, value)
        protocol.record_digest(study, preset)
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
        raise SetupChangedError(
            f"Study {study.study_name!r} in {shown(url)} was tuned under another set-up ({lines}). Delete "
            "or move that study (for the default storage, its .db file) to tune afresh, or "
            "restore the preset or model."
        )


def warm_start(study: optuna.Study, model: str, preset, *, storage: str | None = None) -> list[dict]:
    """Queue the best RBMs of the study of ``model``'s ``warm_start_from`` as the next trials of ``study``.

    :func:`tune` calls it each time the study resumes, so an RBM that has become one
    of the best since is queued then (one tried or queued already is not queued again).

    The RBM is the expensive part of the models that use one, and those RBMs are
    already trained (cached where that study trained them on this machine; the cache
    is not committed): the queued trials fix only the ``rbm__`` parameters (TPE draws
    the classifier's), so they cost a classifier fit each, and the classifiers can be
    compared on the same RBMs. Uses only validation
    scores. Does nothing if that study has no complete trial.

    Returns
    -------
    list of dict
        The RBM parameters queued (already queued ones are not queued twice).
    """
    preset = get_preset(preset)
    source_model = get_model(model).warm_start_from
    if source_model not in preset.models:
        return []
    try:
        source = load_study(source_model, preset, storage=storage, create=False)
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


def log_unlogged(study: optuna.Study, logger: TrialLogger) -> list[int]:
    """Log to MLflow the finished trials that have no run there, and say so on stderr.

    Their process died between Optuna's commit of the trial and the logging
    callback (a SIGKILL, a lost tracking server). Trials that finished less than
    :data:`UNLOGGED_AFTER_S` ago are left to the worker that may be logging them.

    Returns
    -------
    list of int
        The numbers of the trials logged now.
    """
    before = datetime.datetime.now() - datetime.timedelta(seconds=UNLOGGED_AFTER_S)
    trials = [t for t in study.get_trials(deepcopy=False, states=FINISHED)
              if t.datetime_complete is not None and t.datetime_complete <= before]
    logged = logger.log_missing(study, trials)
    if logged:
        print(f"rbmlib: logged {len(logged)} finished trial(s) of {study.study_name} that MLflow "
              f"lacked: {', '.join(map(str, logged))}", file=sys.stderr, flush=True)
    return logged


def _warn_emulated_bfloat16(preset, model: str) -> None:
    """Say so when the preset fixes bfloat16 products that this machine has no hardware for.

    They then run emulated (``rbmlib._bf16``): the same rounding on float32
    kernels, at float32 speed, where torch's own bf16 kernels would run in
    software about 15 times slower. A trial's numbers differ from a bf16
    machine's only as any two machines' do (the order of float32 sums).
    """
    from rbmlib._device import bfloat16_kind, resolve_device

    fixed = preset.fixed_params(model)
    if "bfloat16" in {v for k, v in fixed.items() if k.endswith("precision")}:
        device = resolve_device("auto")
        if bfloat16_kind(device) == "emulated":
            print(f"rbmlib tune: {preset.name}/{model} multiplies in bfloat16, which this {device.type} "
                  "has no hardware for that beats float32 (rbmlib._device.native_bfloat16): emulated "
                  "on float32 kernels, at float32 speed (rbmlib._bf16).", file=sys.stderr, flush=True)


def budget(preset, model: str, n_trials: int | None = None, *, storage: str | None = None) -> tuple[int, int]:
    """``(finished, complete)`` trials that ``tune`` runs ``model``'s study to.

    The preset's budget includes its floor of complete trials and, where the
    preset has ``equal_finished``, as many finished trials as any of its studies
    has now (:func:`rbmlib.tuning.protocol.finished_targets`: ask again after
    trials, as the most can grow). An explicit ``n_trials`` is just that many
    finished trials.
    """
    preset = get_preset(preset)
    if n_trials is not None:
        return n_trials, 0
    return protocol.finished_targets(preset, finished_counts(preset, storage=storage))[model], preset.min_complete


def load_studies(preset, models=None, *, storage: str | None = None) -> dict[str, optuna.Study | None]:
    """``{model: study}`` of the preset's stored studies (None where there is none yet), quietly.

    Opens, and neither creates nor runs, anything: for a preset whose studies
    another command may be running (``make tune``). ``models``: default the preset's.
    """
    preset = get_preset(preset)
    studies = {}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a "using an existing study" line per study
    try:
        for model in preset.models if models is None else models:
            try:
                studies[model] = load_study(model, preset, storage=storage, create=False)
            except MissingStudyError:
                studies[model] = None
    finally:
        optuna.logging.set_verbosity(verbosity)
    return studies


def finished_counts(preset, *, storage: str | None = None) -> dict[str, int]:
    """``{model: finished trials}`` of the preset's studies that exist (none without ``equal_finished``,
    where no budget depends on another study)."""
    preset = get_preset(preset)
    if not preset.equal_finished:
        return {}
    return {m: protocol.counts(s)[0] for m, s in load_studies(preset, storage=storage).items() if s is not None}


class StopAtBudget:
    """Optuna callback: stop once the study has ``n_trials`` finished trials, ``min_complete`` of them complete.

    Counted from the storage after every trial, so that trials that other
    workers on the same study finish count too (as in Optuna's ``MaxTrialsCallback``).
    """

    def __init__(self, n_trials: int, min_complete: int = 0):
        self.n_trials, self.min_complete = n_trials, min_complete

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not any(protocol.shortfall(study, self.n_trials, self.min_complete)):
            study.stop()


def tune(model: str, preset, *, n_trials: int | None = None, storage: str | None = None,
         tracking_uri: str | None = None, seed: int = 0, splits: Splits | None = None,
         show_progress_bar: bool = True, until: datetime.datetime | None = None) -> optuna.Study:
    """Run ``model``'s study until it has its budget: ``n_trials`` finished trials, and the
    preset's ``min_complete`` of them complete (Hyperband may prune many).

    Before and after running trials, finished trials that MLflow lacks are
    logged (:func:`log_unlogged`), even when the study needs no new trial.

    Parameters
    ----------
    model : str
        One of ``rbmlib.models.MODEL_NAMES``.
    preset : str or Preset
        ``"smoke"``, ``"paper"`` or a :class:`~rbmlib.tuning.presets.Preset`.
    n_trials : int, optional
        Target number of finished trials, with no floor of complete ones; default
        the preset's budget. Trials already in the study count, so rerunning resumes.
    storage : str, optional
        Optuna storage URL; default the preset's SQLite file for the model.
    tracking_uri : str, optional
        MLflow tracking URI; default the preset's ``mlflow.db``.
    seed : int
        Seeds the sampler (see :func:`load_study`); models train with the
        preset's ``random_state`` whatever it is, so trials compare like with like.
    splits : Splits, optional
        Training and validation data (default: loaded from the preset).
    show_progress_bar : bool
        Optuna's progress bar over trials (epochs get a bar of their own on a terminal).
    until : datetime.datetime, optional
        Start no trial that is not expected to end before this local time, and put off one
        that, once drawn, is not (its parameters run first next time; :mod:`rbmlib.tuning.deadline`);
        the study may then return short of its target.

    Returns
    -------
    optuna.Study

    Raises
    ------
    StorageError, SetupChangedError
        From :func:`load_study`.
    rbmlib.tuning.protocol.ProtocolLockedError
        Trials are due but the preset has looked at the test set already.
    rbmlib.tuning.tracking.TrackingError
        The tracking URI is not usable or its server does not answer (both checked first), or the
        MLflow store cannot be opened.
    """
    preset = get_preset(preset)
    target = budget(preset, model, n_trials, storage=storage)
    # MLflow's SQL stores use SQLAlchemy too, hence the driver.
    tracking_uri = default_tracking_uri(preset.name) if tracking_uri is None else with_driver(tracking_uri)
    check_tracking(tracking_uri)  # in seconds, before a study is made: a server must answer
    study = load_study(model, preset, storage=storage, seed=seed)
    ensure_experiment(tracking_uri, study.study_name)
    logger = TrialLogger(tracking_uri)
    log_unlogged(study, logger)
    if not any(protocol.shortfall(study, *target)):
        if preset.preregistered and protocol.is_open(preset):
            # A change to another model's range changes the whole protocol's digest: recorded
            # here too (from this study's last trial on), so the finished study passes check_ready.
            protocol.record_digest(study, preset)
        return study
    protocol.check_open(preset)  # no trial after a test look
    protocol.record_digest(study, preset)
    if get_model(model).warm_start_from:
        warm_start(study, model, preset, storage=storage)
    _warn_emulated_bfloat16(preset, model)
    objective = Objective(model, preset, splits=splits, until=until)
    stop_before = deadline.StopBefore(until) if until else None
    # Rounds of as many trials as the budget lacks if all of them complete; Hyperband
    # prunes some, so another round follows until the floor of complete trials is met too,
    # and (equal_finished) until the study has as many as the study with the most.
    while need := max(protocol.shortfall(study, *(target := budget(preset, model, n_trials, storage=storage)))):
        if not deadline.fits(study, until):
            print(f"{study.study_name}: the next trial would not end before {until:%Y-%m-%d %H:%M} "
                  f"(--until); stopping with {need} or more trials to go: tune again to go on", flush=True)
            break
        study.optimize(
            objective,
            n_trials=need,
            callbacks=[
                logger,
                StopAtBudget(*target),  # this round's; another worker on the study may meet it first
                *([stop_before] if stop_before else []),
            ],
            catch=(deadline.Deferred,),  # a trial put off: StopBefore queues it again and stops
            gc_after_trial=True,  # free a finished trial's network and buffers before the next
            show_progress_bar=show_progress_bar,
        )
        if stop_before and (put_off := stop_before.deferred):
            left = max(protocol.shortfall(study, *target))
            print(f"{study.study_name}: trial {put_off.number}, {put_off.user_attrs['deferred']} (--until); "
                  f"put off with its parameters, {left} or more trials to go: tune again to go on", flush=True)
            break
    log_unlogged(study, logger)  # e.g. a trial of a killed run that was too recent at the start
    return study

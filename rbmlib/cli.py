"""Command line: rbmlib data | tune | status | evaluate | summary | few-labels

examples:
  rbmlib data                                   # find, verify and cache Fashion-MNIST
  rbmlib tune --model rbm-lr --preset paper     # resumable; --storage postgresql://... to share
  rbmlib status --preset protocol2              # trials so far, best values, hours left
  rbmlib status --preset protocol2 --budgets    # the studies short of their budget (exit status 4 if any)
  rbmlib evaluate --preset paper                # best params, refit on trainval, test once
  rbmlib summary --preset paper                 # results/summary.csv
  rbmlib few-labels --preset protocol2          # after evaluate: 10-1,000 labels per class, test once

A problem the user can fix (a storage or tracking URI that does not work, a
damaged study file, a missing study) is one line on stderr and exit status 1;
a mistyped command line is argparse's usage message and exit status 2.
`tune --until` that stops a study short of its budget, or `evaluate --until`
that stops before a refit, exits with status 3 and starts no model after it:
``make tune``'s chains stop there.
"""

from __future__ import annotations

import argparse
import sys

#: Exit status of ``tune --until`` or ``evaluate --until`` that stopped short.
UNTIL_STOPPED = 3
#: Exit status of ``status --budgets`` while a study lacks its budget.
SHORT_OF_BUDGET = 4

# Module level imports stay light (argparse, sys): `rbmlib --help` must not wait
# for torch, Optuna or MLflow; each command imports what it runs.

_TUNE_EXAMPLES = """\
examples:
  rbmlib tune --model lr --preset smoke --n-trials 3
  rbmlib tune --model rbm-lr --storage postgresql://user@host:5432/optuna --seed 1   # a second worker
  rbmlib tune --preset protocol2 --until 15:05  # start no trial that would end after 15:05
"""
_EVALUATE_EXAMPLES = """\
example:
  rbmlib evaluate --model lr --preset smoke     # after `rbmlib tune --model lr --preset smoke`
"""
_SUMMARY_EXAMPLES = """\
example:
  rbmlib summary --preset smoke                 # prints and writes results/smoke/summary.csv
"""
_FEW_LABELS_EXAMPLES = """\
example:
  rbmlib few-labels --preset protocol2          # after `rbmlib evaluate --preset protocol2`; resumable
"""


def _data(args) -> int:
    from rbmlib import data

    try:
        root = data.ensure_data(args.data_dir, download=not args.no_download)
    except data.DataError as exc:
        print(f"rbmlib data: {exc}", file=sys.stderr)
        return 1
    print(f"Fashion-MNIST verified in {root / 'FashionMNIST' / 'raw'}")
    return 0


def _claimed(args, model: str, command: str):
    """``model``'s claim with ``--skip-busy`` (``rbmlib.tuning.claim``; for a refit, ``<model>-seed<n>``),
    else nothing to hold."""
    import contextlib

    from rbmlib.tuning.claim import claim

    return claim(args.preset, model, command) if args.skip_busy else contextlib.nullcontext()


def _tune(args) -> int:
    from rbmlib import tuning
    from rbmlib.tuning import protocol
    from rbmlib.tuning.study import budget

    if args.join and not args.skip_busy:
        print("rbmlib tune: --join works with --skip-busy (it joins a study that another "
              "`--skip-busy` process holds); add --skip-busy", file=sys.stderr)
        return 2

    preset = tuning.get_preset(args.preset)
    for model in args.model or preset.models:
        study = _tune_claimed(args, preset, model)
        if study is None:
            continue
        n, _ = protocol.counts(study)
        try:
            best = f"best val accuracy {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:  # no complete trial yet
            best = "no complete trial yet"
        print(f"{study.study_name}: {n} finished trials, {best}")
        target = budget(args.preset, model, args.n_trials, storage=args.storage)
        if args.until is not None and any(protocol.shortfall(study, *target)):
            # Stopped for the deadline: a later model would start trials of a length nobody knows yet.
            print(f"rbmlib tune: stopped for --until with {study.study_name} short of its budget; "
                  "no further model starts (exit status 3)")
            return UNTIL_STOPPED
    return 0


def _tune_claimed(args, preset, model: str):
    """Tune ``model`` under its claim (``--skip-busy``), or as its study's second worker
    (``--join``) where another process holds it; None where it is skipped."""
    from rbmlib import tuning
    from rbmlib.tuning import protocol
    from rbmlib.tuning.claim import Busy, claim

    def run(seed):
        return tuning.tune(model, args.preset, n_trials=args.n_trials, storage=args.storage,
                           tracking_uri=args.tracking_uri, seed=seed, until=args.until)

    try:
        with _claimed(args, model, "tune"):
            return run(args.seed)
    except Busy as exc:
        busy = exc
    if not args.join:
        print(f"{busy}: skipped")
        return None
    if model in preset.spaces and protocol.one_at_a_time(preset, model):
        print(f"{busy}: skipped (it searches up to a resource limit: one process at a time)")
        return None
    try:  # the study's second worker, with a sampler seed of its own
        with claim(args.preset, model, "tune --join", worker=1):
            print(f"{busy}: joining its study as a second worker (--seed {args.seed + 1})", flush=True)
            return run(args.seed + 1)
    except Busy as exc:
        print(f"{exc}: skipped")
        return None


def _short_of_budget(args) -> int:
    """``status --budgets``: a line per study that lacks its budget; :data:`SHORT_OF_BUDGET` if any does."""
    from rbmlib import tuning
    from rbmlib.tuning import protocol
    from rbmlib.tuning.study import load_studies

    preset = tuning.get_preset(args.preset)
    problems = protocol.budget_problems(preset, load_studies(preset, storage=args.storage))
    for line in problems:
        print(f"{preset.name}/{line}")
    return SHORT_OF_BUDGET if problems else 0


def _status(args) -> int:
    import optuna
    import pandas as pd

    from rbmlib import tuning
    from rbmlib.tuning.progress import progress_table, running_trials
    from rbmlib.tuning.study import load_studies

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study opened
    if args.budgets:
        return _short_of_budget(args)
    preset = tuning.get_preset(args.preset)
    studies = load_studies(preset, storage=args.storage)  # opened once, for the table and the edges
    table = progress_table(preset, studies=studies)
    left, unknown = table["hours left"].sum(), table.loc[table["hours left"].isna(), "model"].tolist()
    shown = table.copy()
    for column, fmt in {"best val accuracy": "{:.4f}", "minutes per trial": "{:.1f}", "hours left": "{:.1f}",
                        "refit hours": "{:.1f}", "best trial": "{}"}.items():
        shown[column] = ["" if pd.isna(v) else fmt.format(v) for v in table[column]]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(shown.to_string(index=False))
    refits = table["refit hours"].sum()
    evaluation = (f"the evaluation: about {refits:.1f} hours on one thread"
                  + (" at the best trials so far" if left or unknown else "")
                  + (", and more for the models without a complete trial" if table["refit hours"].isna().any()
                     else ""))
    if not left and not unknown:
        print(f"Every study has its budget; {evaluation if refits else 'every refit is evaluated'}.")
    else:
        print(f"Trials left: about {left:.1f} hours on one thread"
              + (f", and {', '.join(unknown)} not started or without a complete trial" if unknown else "")
              + f"; then {evaluation}.")
    for line in running_trials(preset, studies):
        print(f"Running: {line}.")
    _print_edges(preset, studies)
    return 0


def _print_edges(preset, studies) -> None:
    """Where a preset that checks edges has best values on or nearest an edge (the tuning chapter's
    sentence): a range to widen is best found while its study still runs, not at the test look."""
    if preset.edge_margin is None:
        return
    from rbmlib.report import search

    print(search.edges_sentence(search.best_positions_table(studies, preset), preset))


def _evaluate(args) -> int:
    from rbmlib import tuning
    from rbmlib.tuning import protocol
    from rbmlib.tuning.claim import Busy
    from rbmlib.tuning.deadline import DeadlineStop

    # Under --skip-busy one refit at a time, each under the claim of its (model, seed), so that
    # two chains share even one model's seeds; a model that searches up to a resource limit
    # (memory) under its own claim, all its seeds in one process; else all together.
    preset = tuning.get_preset(args.preset)
    models = args.model or list(preset.models)
    jobs = [(models, None)]  # (models, seeds): None, all of each model's seeds
    if args.skip_busy:
        def shared(m):  # a model outside the preset has no seeds: evaluate says what is missing
            return m in preset.refit_random_states and not (m in preset.spaces and protocol.one_at_a_time(preset, m))

        jobs = [job for m in models
                for job in ([([m], [s]) for s in preset.refit_random_states[m]] if shared(m) else [([m], None)])]
    for models, seeds in jobs:
        try:
            with _claimed(args, f"{models[0]}-seed{seeds[0]}" if seeds else models[0], "evaluate"):
                tuning.evaluate(models, args.preset, storage=args.storage, seeds=seeds, until=args.until)
        except Busy as exc:
            print(f"{exc}: skipped")
        except DeadlineStop as exc:
            print(f"rbmlib evaluate: {exc}; stopping here, every refit before it is kept "
                  "(exit status 3): evaluate again to go on")
            return UNTIL_STOPPED
        except (KeyError, ValueError) as exc:  # a study missing, or without a complete trial
            print(f"rbmlib evaluate: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 1
    return _summary(args)


def _summary(args) -> int:
    import pandas as pd

    from rbmlib import paths, tuning

    summary = tuning.summarize(args.preset, storage=args.storage)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.drop(columns=["best_params", "refit_params"]).to_string(index=False))
    print(f"Written to {paths.summary_csv(args.preset)}")
    return 0


def _few_labels(args) -> int:
    import pandas as pd

    from rbmlib import paths
    from rbmlib.report.few_labels import few_labels_table
    from rbmlib.tuning.claim import Busy
    from rbmlib.tuning.deadline import DeadlineStop
    from rbmlib.tuning.few_labels import applies_to, few_labels, read_results
    from rbmlib.tuning.presets import get_preset

    if args.if_applicable and not applies_to(get_preset(args.preset).models):
        print(f"rbmlib few-labels: the {args.preset} preset has no few-labels study; nothing to do")
        return 0
    try:
        with _claimed(args, "few-labels", "few-labels"):  # two chains must not score the same look
            before = len(read_results(args.preset))
            results = few_labels(args.preset, storage=args.storage, ready_only=args.ready_only,
                                 until=args.until)
    except Busy as exc:
        print(f"{exc}: skipped")
        return 0
    except DeadlineStop as exc:
        print(f"rbmlib few-labels: {exc}; stopping here, every look before it is recorded "
              "(exit status 3): run it again to go on")
        return UNTIL_STOPPED
    except (KeyError, ValueError) as exc:  # not ready, not evaluated, a second look
        print(f"rbmlib few-labels: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    if args.ready_only and len(results) == before:
        print("rbmlib few-labels: nothing new to score (--ready-only: each fit waits for its refit)")
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(few_labels_table(results).to_string(index=False))
    print(f"Written to {paths.few_labels_csv(args.preset)}")
    return 0


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors of the tuning commands that are the user's to fix; their messages are one line.

    Imported when a tuning command fails, not before: they come with Optuna and MLflow.
    """
    from rbmlib.tuning.stores import StorageError
    from rbmlib.tuning.study import MissingStudyError, SetupChangedError
    from rbmlib.tuning.tracking import TrackingError

    return StorageError, TrackingError, MissingStudyError, SetupChangedError


def _until(text: str):
    """argparse type of ``--until``: its message, not argparse's "invalid value"."""
    from rbmlib.tuning.deadline import parse_until

    try:
        return parse_until(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_tuning_args(parser, *, models=True) -> None:
    from rbmlib.models import MODEL_NAMES
    from rbmlib.tuning.presets import PRESETS

    if models:
        parser.add_argument("--model", action="append", choices=MODEL_NAMES,
                            help="a model (repeat for several; default: all of the preset's models)")
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS),
                        help="trials, epochs and data sizes (rbmlib/tuning/presets.py); default paper")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL, sqlite:///path.db or postgresql://user@host:5432/optuna "
                             "(default: SQLite files under the preset's results/studies/)")


def _add_skip_busy(parser, verb: str) -> None:
    parser.add_argument("--skip-busy", action="store_true",
                        help=f"skip a model (evaluate: a model's seed) that another `rbmlib ... --skip-busy` "
                             f"on this machine {verb} now (how the two chains of `make tune` share the work)")


def _parser() -> argparse.ArgumentParser:
    # Raw descriptions and epilogs: argparse would otherwise join the examples into one paragraph.
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="rbmlib", description=__doc__, formatter_class=raw)
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("data", help="find, verify and cache Fashion-MNIST")
    get.add_argument("--data-dir", default=None, help="cache folder (default: $RBMLIB_DATA_DIR or ./data)")
    get.add_argument("--no-download", action="store_true", help="use local copies only")
    get.set_defaults(run=_data)

    tune = commands.add_parser("tune", help="run (or resume) Optuna studies, logged to MLflow",
                               epilog=_TUNE_EXAMPLES, formatter_class=raw)
    _add_tuning_args(tune)
    tune.add_argument("--n-trials", type=int, default=None,
                      help="target number of finished trials per study (default: the preset's)")
    tune.add_argument("--tracking-uri", default=None,
                      help="MLflow tracking URI, e.g. http://host:5000 or sqlite:///mlflow.db "
                           "(default: sqlite:///<results>/mlflow.db)")
    tune.add_argument("--seed", type=int, default=0,
                      help="seeds the TPE sampler; give each worker sharing a study its own")
    tune.add_argument("--until", type=_until, default=None, metavar="TIME",
                      help="start no trial that would not end by TIME (15:05 or 2026-12-02T15:05, "
                           "local time), judged by the median of the study's complete trials; "
                           "tune again later to go on (exit status 3)")
    _add_skip_busy(tune, "tunes")
    tune.add_argument("--join", action="store_true",
                      help="with --skip-busy: join a study that another chain tunes as its second worker "
                           "(sampler seed --seed + 1) instead of skipping it; the second pass of `make tune`'s "
                           "chains, so that no chain idles while the other runs the last study")
    tune.set_defaults(run=_tune)

    status = commands.add_parser("status", help="trials so far against each study's budget, best values, "
                                 "hours left (read-only: runs beside `make tune`)")
    _add_tuning_args(status, models=False)
    status.add_argument("--budgets", action="store_true",
                        help="print only the studies short of their budget; exit status 0 once every study has "
                             f"it, {SHORT_OF_BUDGET} while one lacks it (`make tune`'s chains ask after each pass)")
    status.set_defaults(run=_status)

    evaluate = commands.add_parser("evaluate", help="refit the best parameters, score once on test",
                                   epilog=_EVALUATE_EXAMPLES, formatter_class=raw)
    _add_tuning_args(evaluate)
    evaluate.add_argument("--until", type=_until, default=None, metavar="TIME",
                          help="start no refit that would not end by TIME, judged by the model's refits "
                               "so far, else by its best trial; evaluate again later to go on (exit status 3)")
    _add_skip_busy(evaluate, "evaluates")
    evaluate.set_defaults(run=_evaluate)

    summary = commands.add_parser("summary", help="write and print the preset's summary.csv",
                                  epilog=_SUMMARY_EXAMPLES, formatter_class=raw)
    _add_tuning_args(summary, models=False)
    summary.set_defaults(run=_summary)

    few = commands.add_parser("few-labels", help="after evaluate: logistic regression with 10 to 1,000 "
                              "labels per class on pixels, RBM and random features, test once",
                              epilog=_FEW_LABELS_EXAMPLES, formatter_class=raw)
    _add_tuning_args(few, models=False)
    few.add_argument("--if-applicable", action="store_true",
                     help="do nothing (exit status 0) where the preset lacks the compared models, "
                          "as protocol 1 (paper) does; `make tune` runs it so for every preset")
    few.add_argument("--ready-only", action="store_true",
                     help="only the fits on refits that are evaluated and whose RBMs are in the cache, "
                          "the rest later without an error (`make tune` runs it after each model's "
                          "refits, so that no RBM is trained again in a later session)")
    few.add_argument("--until", type=_until, default=None, metavar="TIME",
                     help="start no fit that would not end by TIME, judged by the earlier fits of the "
                          "same features and labels; run it again later to go on (exit status 3)")
    _add_skip_busy(few, "scores")
    few.set_defaults(run=_few_labels)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as exc:
        # Only the known errors become one line; anything else keeps its traceback.
        if args.command == "data" or not isinstance(exc, _user_errors()):
            raise
        print(f"rbmlib {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""rbmlib.report.search: Optuna's plots titled per model, and the search-space and trial tables."""

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from rbmlib.report import search
from rbmlib.tuning.protocol import space_distributions
from rbmlib.tuning.presets import PAPER


def _study(n_complete, n_pruned=0):
    study = optuna.create_study(direction="maximize")
    dists = {"C": FloatDistribution(1e-3, 10, log=True), "units": IntDistribution(8, 64)}
    for i in range(n_complete + n_pruned):
        state = TrialState.COMPLETE if i < n_complete else TrialState.PRUNED
        study.add_trial(create_trial(params={"C": 10 ** (i % 4 - 2), "units": 8 + 7 * i}, distributions=dists,
                                     value=0.8 + 0.01 * (i % 3) if state == TrialState.COMPLETE else None,
                                     state=state, intermediate_values={0: 0.5}))
    return study


@pytest.mark.parametrize("draw", [search.history, search.slices, search.importances])
def test_each_plot_is_one_figure_titled_with_the_model(draw):
    fig = draw(_study(6), "Logistic regression")
    assert fig._suptitle.get_text() == "Logistic regression"
    assert not [ax.get_title() for ax in fig.axes if ax.get_title().endswith("Plot")]


def test_importances_with_too_few_trials_say_so_instead_of_failing():
    fig = search.importances(_study(1, n_pruned=2), "CNN")
    assert "too few" in fig.axes[0].texts[0].get_text()


def test_importances_are_seeded():
    a = search.importances(_study(8), "x", random_state=1)
    b = search.importances(_study(8), "x", random_state=1)
    widths = [[p.get_width() for p in fig.axes[0].patches] for fig in (a, b)]
    assert widths[0] == widths[1] and len(widths[0]) == 2


def test_trials_table_counts_states_and_time():
    table = search.trials_table({"lr": _study(3, n_pruned=2)}).set_index("model")
    assert table.loc["lr", ["complete", "pruned", "failed"]].tolist() == [3, 2, 0]
    assert table.loc["lr", "best validation accuracy"] == pytest.approx(0.82)
    assert table.loc["lr", "lbfgs converged"] == ""  # the trials recorded nothing either way


def test_trials_table_says_whether_the_best_logistic_regression_converged():
    study = optuna.create_study(direction="maximize")
    dists = {"C": FloatDistribution(1e-3, 100, log=True)}
    for C, value, converged in [(0.1, 0.80, True), (90.0, 0.85, False)]:
        study.add_trial(create_trial(params={"C": C}, distributions=dists, value=value,
                                     user_attrs={"converged": converged}))
    assert search.trials_table({"rbm-lr": study}).loc[0, "lbfgs converged"] == "no"


def test_search_space_table_reads_the_spaces_themselves():
    table = search.search_space_table(PAPER).set_index("model")
    assert list(table.index) == list(PAPER.models)
    assert table.loc["lr", "searched"] == "C: 0.001 to 10 (log)"
    for model in PAPER.models:
        names = space_distributions(PAPER.spaces[model], PAPER)
        assert names and all(name in table.loc[model, "searched"] for name in names)
        assert table.loc[model, "trials"] == PAPER.n_trials[model]
    assert "rbm__n_iter = 10" in table.loc["rbm-lr", "fixed"]


def test_search_space_table_shows_a_range_widened_part_way_through_a_study():
    study = optuna.create_study(direction="maximize")
    for value, high in [(0.8, 1.0), (0.81, 1.0), (0.82, 1.0), (0.83, 10.0)]:
        study.add_trial(optuna.trial.create_trial(
            params={"C": 0.5}, value=value,
            distributions={"C": optuna.distributions.FloatDistribution(1e-3, high, log=True)}))
    table = search.search_space_table(PAPER, {"lr": study}).set_index("model")
    assert table.loc["lr", "searched"] == "C: 0.001 to 10 (log) (trials 0-2: 0.001 to 1 (log))"
    assert "trials" not in table.loc["fnn", "searched"]  # no study given: the range alone

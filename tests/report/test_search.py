"""rbmlib.report.search: Optuna's plots titled per model, and the search-space and trial tables."""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from rbmlib.report import curves, search
from rbmlib.report.plots import _shown_labels
from rbmlib.tuning.protocol import space_distributions
from rbmlib.tuning.presets import PAPER


@pytest.fixture(autouse=True)
def _close_figures():
    """Each test's figures closed after it (matplotlib warns past 20 open ones)."""
    yield
    plt.close("all")


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


def test_importances_rank_a_parameter_whose_range_was_widened_during_the_study():
    study = optuna.create_study(direction="maximize")
    rng = np.random.default_rng(0)
    for i in range(12):  # C's range doubles after the sixth trial, as protocol 2's edge rule widens one
        high = 10.0 if i < 6 else 100.0
        dists = {"C": FloatDistribution(1e-3, high, log=True), "n": IntDistribution(1, 9)}
        C, n = float(rng.uniform(1e-3, high)), int(rng.integers(1, 10))
        study.add_trial(optuna.trial.create_trial(params={"C": C, "n": n}, distributions=dists,
                                                  value=0.5 + 0.4 * (C > 5)))
    fig = search.importances(study, "x")
    assert sorted(t.get_text() for t in fig.axes[0].get_yticklabels()) == ["C", "n"]


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
        assert table.loc[model, "trial budget"] == f"{PAPER.n_trials[model]} finished"
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


def _crowded_study():
    """Seven parameters with long tick labels: the strip of a study like rbm-fnn's."""
    study = optuna.create_study(direction="maximize")
    dists = {f"clf__p{k}": FloatDistribution(1e-4 * (k + 1), 2.5e-3 * (k + 1), log=True) for k in range(4)}
    dists.update({f"rbm__q{k}": IntDistribution(1000 + k, 8192) for k in range(3)})
    for i in range(6):
        params = {name: (d.low + (d.high - d.low) * i / 5) for name, d in dists.items()}
        params = {n: int(v) if isinstance(dists[n], IntDistribution) else v for n, v in params.items()}
        study.add_trial(create_trial(params=params, distributions=dists, value=0.8 + 0.01 * i))
    return study


def test_slice_tick_labels_never_overlap():
    fig = search.slices(_crowded_study(), "crowded")
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for ax in fig.axes for label in _shown_labels(ax)]
    assert len(boxes) >= 7  # every panel keeps a label
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0, "two tick labels overlap"


def test_slices_of_more_parameters_than_a_row_holds_take_two_rows():
    study = _crowded_study()
    extra = {"clf__dropout": FloatDistribution(0.0, 0.5), "clf__weight_decay": FloatDistribution(1e-6, 1e-2, log=True)}
    wide = optuna.create_study(direction="maximize")
    for t in study.trials:
        wide.add_trial(create_trial(params={**t.params, "clf__dropout": 0.1, "clf__weight_decay": 1e-4},
                                    distributions={**t.distributions, **extra}, value=t.value))
    assert len(wide.best_params) == 9 > search.SLICES_PER_ROW
    fig = search.slices(wide, "nine")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert len(panels) == 9 and tuple(fig.get_size_inches()) == (search.STRIP[0], (1 + search.SECOND_ROW) * search.STRIP[1])
    assert len({round(ax.get_position().y0, 3) for ax in panels}) == 2  # two rows
    assert tuple(search.slices(study, "seven").get_size_inches()) == search.STRIP  # seven share one strip


def test_panels_draw_one_strip_per_model_and_say_which_are_missing():
    figures = search.panels(search.history, {"lr": _study(2), "pca-lr": None}, ["lr", "pca-lr", "pre-fnn"])
    assert [f.texts[0].get_text() for f in figures] == ["Logistic regression (pixels)",
                                                         "Logistic regression on PCA features",
                                                         "RBM-initialised feed-forward network (pixels)"]
    assert figures[1].axes[0].texts[0].get_text() == "no study yet"
    assert figures[2].axes[0].texts[0].get_text() == "not among the models of this run"


def _network_study():
    """Two complete trials (trial 1 the best, its best epoch 3) and one pruned at epoch 2."""
    study = optuna.create_study(direction="maximize")
    dists = {"units": IntDistribution(8, 64)}
    curves_ = [([0.70, 0.75, 0.76], 0.76, 3), ([0.72, 0.80, 0.83, 0.82], 0.83, 3), ([0.5, 0.55], None, None)]
    for i, (values, value, best_epoch) in enumerate(curves_):
        study.add_trial(create_trial(
            params={"units": 8 + i}, distributions=dists, value=value,
            state=TrialState.COMPLETE if value else TrialState.PRUNED,
            intermediate_values={e + 1: v for e, v in enumerate(values)},
            user_attrs={"best_epoch": best_epoch} if best_epoch else {}))
    return study


def test_learning_curves_one_panel_per_network_best_trial_highlighted():
    fig = curves.learning_curves({"lr": None, "fnn": _network_study(), "pre-fnn": None})
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["Feed-forward network (pixels)",
                                                 "RBM-initialised feed-forward\nnetwork (pixels)"]  # lr: no epochs
    lines = {len(line.get_xdata()): line for line in panels[0].get_lines()}
    assert lines[2].get_alpha() < lines[3].get_alpha()  # pruned lighter than complete
    best = lines[4]
    assert best.get_linewidth() > lines[3].get_linewidth() and list(best.get_ydata()) == [0.72, 0.80, 0.83, 0.82]
    dots = [line for line in panels[0].get_lines() if len(line.get_xdata()) == 1]
    assert [(d.get_xdata()[0], d.get_ydata()[0]) for d in dots] == [(3, 0.83)]  # the refit's epoch
    assert panels[1].texts[0].get_text() == "no study yet"


def _rbm_lr_study(tuned_epochs):
    study = optuna.create_study(direction="maximize")
    dists = {"rbm__n_components": IntDistribution(256, 8192, log=True), "clf__C": FloatDistribution(1e-3, 10, log=True)}
    if tuned_epochs:
        dists["rbm__n_iter"] = IntDistribution(5, 50, step=5)
    else:
        study.set_user_attr("fixed_params", {"rbm__n_iter": 10})
    for i, n in enumerate([256, 1024, 4096]):
        params = {"rbm__n_components": n, "clf__C": 10.0 ** (i - 2), **({"rbm__n_iter": 5 * (i + 1)} if tuned_epochs else {})}
        study.add_trial(create_trial(params=params, distributions=dists, value=0.8 + 0.02 * i))
    return study


def test_lr_validation_curve_against_hidden_units_and_epochs():
    fig = curves.lr_validation_curve(_rbm_lr_study(tuned_epochs=True))
    units, epochs = fig.axes[:2]
    assert units.get_xscale() == "log" and epochs.get_xscale() == "linear"
    assert sorted(units.collections[0].get_offsets()[:, 0]) == [256, 1024, 4096]
    assert sorted(epochs.collections[0].get_offsets()[:, 0]) == [5, 10, 15]
    assert list(units.collections[1].get_offsets()[0]) == pytest.approx([4096, 0.84])  # the best trial, ringed


def test_lr_validation_curve_says_when_the_epochs_were_fixed():
    fig = curves.lr_validation_curve(_rbm_lr_study(tuned_epochs=False))
    assert fig.axes[1].texts[0].get_text() == "rbm__n_iter was fixed at 10 in every trial"
    assert "no study yet" in curves.lr_validation_curve(None).axes[0].texts[0].get_text()


@pytest.mark.parametrize("draw", [search.history, search.slices, search.importances])
def test_a_study_not_there_yet_is_a_strip_saying_so(draw):
    assert draw(None, "CNN").axes[0].texts[0].get_text() == "no study yet"


def test_trials_table_has_a_row_of_zeros_for_a_study_not_there_yet():
    table = search.trials_table({"lr": _study(2), "pre-fnn": None}).set_index("model")
    assert table.loc["pre-fnn", ["complete", "pruned", "failed"]].tolist() == [0, 0, 0]
    assert table.loc["pre-fnn", "compute (min)"] == 0
    assert table["best trial"].isna()["pre-fnn"] and table.loc["lr", "best trial"] == 1  # an integer, not 1.000


def _lr_study(C):
    study = optuna.create_study(direction="maximize")
    dists = {"C": FloatDistribution(1e-4, 1e3, log=True)}
    for c, value in [(C, 0.9), (1.0, 0.5)]:
        study.add_trial(create_trial(params={"C": c}, distributions=dists, value=value))
    return study


def test_best_positions_place_each_best_value_in_its_range_and_name_the_edges():
    from rbmlib.tuning.presets import PROTOCOL2

    table = search.best_positions_table({"lr": _lr_study(1e-1), "pca-lr": None}, PROTOCOL2)
    row = table.set_index("model").loc["lr"]
    assert row["parameter"] == "C" and row["best"] == "0.1" and row["position"] == "43%" and row["edge"] == ""
    assert list(table["model"]) == ["lr"]  # a study not there yet has no rows
    sentence = search.edges_sentence(table, PROTOCOL2)
    assert sentence.startswith("No best value of the 1 study lies within 3%")
    assert sentence.endswith("The nearest an end: lr: C = 0.1, at 43% of 0.0001 to 1000 (log).")
    edge = search.best_positions_table({"lr": _lr_study(900.0)}, PROTOCOL2)
    assert edge.loc[0, "edge"] == "upper end" and edge.loc[0, "position"] == "99%"
    assert search.edges_sentence(edge, PROTOCOL2).startswith(
        "One best value lies within 3% of its range's width of an end or at a cap: "
        "lr: C = 900 (upper end of 0.0001 to 1000 (log)).")
    stated = dataclasses.replace(PROTOCOL2, resource_limits={"C": (None, 1e3)})
    limited = search.best_positions_table({"lr": _lr_study(900.0)}, stated)
    assert limited.loc[0, "edge"] == "upper end (resource limit)"
    assert "That one is at a resource limit that the protocol states" in search.edges_sentence(limited, stated)


def test_the_edges_sentence_names_the_best_value_nearest_an_end_among_the_others():
    from rbmlib.tuning.presets import PROTOCOL2

    table = pd.DataFrame([
        {"model": "lr", "parameter": "C", "best": "900", "range": "0.0001 to 1000 (log)", "position": "99%",
         "edge": "upper end"},
        {"model": "rbm-lr", "parameter": "rbm__n_components", "best": "7,377", "range": "256 to 8192 (log)",
         "position": "97%", "edge": ""},
        {"model": "rbm-lr", "parameter": "clf__C", "best": "0.01", "range": "0.0001 to 1000 (log)",
         "position": "6%", "edge": ""},
        {"model": "rbm-lr", "parameter": "rbm__persistent", "best": "True", "range": "one of True, False",
         "position": "", "edge": ""},
    ])
    sentence = search.edges_sentence(table, PROTOCOL2)
    assert sentence.startswith("One best value lies")
    assert sentence.endswith(" Of the others, the nearest an end: rbm-lr: rbm__n_components = 7,377, "
                             "at 97% of 256 to 8192 (log).")
    # One edge at a stated resource limit beside one to widen: which is which.
    both = pd.concat([table, pd.DataFrame([{
        "model": "random-lr", "parameter": "random__n_components", "best": "32,133", "position": "100%",
        "range": "256 to 32768 (log)", "edge": "upper end (resource limit)"}])], ignore_index=True)
    sentence = search.edges_sentence(both, PROTOCOL2)
    assert sentence.startswith("2 best values lie within 3% of their range's width of an end or at a cap: ")
    assert ("random-lr's is at a resource limit that the protocol states: not widened, and a caveat of the "
            "model's verdicts; the other means widening the range and searching on.") in sentence


def test_a_preset_without_an_edge_margin_is_judged_by_protocol_2s():
    table = search.best_positions_table({"lr": _lr_study(9.0)}, PAPER)  # protocol 1's range ends at 10
    assert table.loc[0, "edge"] == "upper end"


def test_trial_numbers_of_an_earlier_range_read_as_runs():
    from rbmlib.report.search import _numbers

    assert _numbers([*range(28), 29]) == "0-27, 29"  # a retry of trial 28 drew from the widened range
    assert _numbers([0, 2, 5]) == "0, 2, 5" and _numbers([3, 4, 8, 9, 10]) == "3, 4, 8-10"


def test_the_search_space_table_gives_every_study_the_count_of_the_study_with_the_most():
    from rbmlib.tuning.presets import PROTOCOL2

    study = optuna.create_study(direction="maximize")
    dists = {"C": FloatDistribution(1e-4, 1e3, log=True)}
    for i in range(40):
        study.add_trial(create_trial(params={"C": 0.1 + i}, distributions=dists, value=0.5))
    table = search.search_space_table(PROTOCOL2, {"lr": study}).set_index("model")["trial budget"]
    assert table["lr"] == table["cnn"] == "40 finished (at least 30), 15 of them complete"
    alone = search.search_space_table(dataclasses.replace(PROTOCOL2, equal_finished=False), {"lr": study})
    assert alone.set_index("model").loc["cnn", "trial budget"] == "30 finished, 15 of them complete"


def test_learning_curves_start_below_the_complete_trials_so_a_slow_pruned_one_leaves_the_frame():
    def bottom(study):
        return [a for a in curves.learning_curves({"fnn": study}).axes if a.get_title()][0].get_ylim()[0]

    study = _network_study()  # complete trials from 0.70 to 0.83; the pruned one starts at 0.5
    assert 0.5 < bottom(study) < 0.70
    assert bottom(study) == pytest.approx(0.70 - 0.05 * (0.83 - 0.70))
    complete_only = optuna.create_study(direction="maximize")
    complete_only.add_trials([t for t in study.trials if t.state == TrialState.COMPLETE])
    assert bottom(complete_only) < 0.70  # nothing to cut: every curve in the frame

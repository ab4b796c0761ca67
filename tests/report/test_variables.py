"""The numbers the article's prose quotes (rbmlib.report.variables); _variables.yml itself: test_manuscript.py."""

from rbmlib.report import variables


def test_the_budget_variables_are_written_only_where_every_model_shares_them():
    from rbmlib.tuning.study import finished_counts

    most = max(30, *finished_counts("protocol2").values())  # every study runs to the most any has
    assert variables._budget_variables("protocol2") == {"trial_budget": str(most), "min_complete": "15",
                                                       "n_refit_seeds": "5"}
    assert variables._budget_variables("paper") == {"min_complete": "0"}  # protocol 1's budgets differ


def test_the_few_labels_variables_are_the_paired_differences_with_the_minus_sign(monkeypatch):
    import pandas as pd

    from rbmlib.tuning import few_labels

    rows = [{"model": m, "labels_per_class": n, "seed": s, "test_accuracy": acc + 0.01 * s}
            for n in (10, 100) for s in (0, 1)
            for m, acc in (("lr", 0.60), ("rbm-lr", 0.62 if n == 10 else 0.55), ("random-lr", 0.61))]
    monkeypatch.setattr(few_labels, "read_results", lambda preset: pd.DataFrame(rows))
    got = variables._few_labels_variables("protocol2")
    assert got["few_labels_10_rbm_lr_minus_lr"] == "+2.00" and got["few_labels_10_rbm_lr_minus_lr_se"] == "0.00"
    assert got["few_labels_100_rbm_lr_minus_random_lr"] == "\N{MINUS SIGN}6.00"
    assert len(got) == 8  # 2 sizes x 2 baselines x (difference, standard error)
    assert variables._few_labels_variables("paper") == {}  # protocol 1 has no few-labels study
    monkeypatch.setattr(few_labels, "read_results", lambda preset: pd.DataFrame(columns=few_labels.COLUMNS))
    assert variables._few_labels_variables("protocol2") == {}  # not run yet


def test_the_fit_machines_variable_names_each_set_up_with_its_fits(monkeypatch):
    import pandas as pd

    from rbmlib.tuning import few_labels, refit

    def machines(*values):
        return lambda preset: pd.DataFrame({"machine": list(values)})

    one = "AMD EPYC; 1 thread; bfloat16 native; torch 2.14.1"
    other = "Intel Xeon; 1 thread; bfloat16 native; torch 2.14.1"
    monkeypatch.setattr(refit, "read_evaluation", machines(one, one))
    monkeypatch.setattr(few_labels, "read_results", machines(one))
    assert variables._fit_machines("protocol2") == "on one set-up (AMD EPYC, 1 thread, bfloat16 native, torch 2.14.1)"
    monkeypatch.setattr(few_labels, "read_results", machines(other, None))  # a row of an older version: not counted
    assert variables._fit_machines("protocol2") == ("on 2 set-ups: AMD EPYC, 1 thread, bfloat16 native, torch 2.14.1 "
                                                   "(2 fits) and Intel Xeon, 1 thread, bfloat16 native, torch 2.14.1 "
                                                   "(1 fit)")
    monkeypatch.setattr(refit, "read_evaluation", machines())
    monkeypatch.setattr(few_labels, "read_results", machines(None))
    assert variables._fit_machines("protocol2") == "on set-ups that were not recorded"

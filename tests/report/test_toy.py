"""The toy RBM (3 visible, 2 hidden units) and its tables of all states."""

import numpy as np
import pytest

import rbm_reference as ref
from rbmlib import BernoulliRBM
from rbmlib.report import toy

OBSERVED = ["AC", "B"]  # the two visible patterns of the six data rows


@pytest.fixture(scope="module")
def trained():
    return toy.train_toy_rbm(random_state=0)


@pytest.fixture(scope="module")
def untrained():
    return toy.train_toy_rbm(random_state=0, n_iter=0)


def params(rbm):
    return rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_


def test_toy_data_is_the_tutorials_six_rows():
    X = toy.toy_data()
    assert X.shape == (6, 3)
    rows, counts = np.unique(X, axis=0, return_counts=True)
    assert rows.tolist() == [[0, 1, 0], [1, 0, 1]] and counts.tolist() == [2, 4]


def test_joint_table_matches_brute_force(trained):
    table = toy.joint_table(trained)
    assert len(table) == 32
    assert list(table.columns) == ["A", "B", "C", "D", "E", "state", "energy", "weight", "probability"]
    W, b_h, b_v = params(trained)
    v, h = table[["A", "B", "C"]].to_numpy(float), table[["D", "E"]].to_numpy(float)
    energy = -(v @ b_v) - (h @ b_h) - np.einsum("nj,jk,nk->n", h, W, v)
    np.testing.assert_allclose(table["energy"], energy, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(table["weight"], np.exp(-energy), rtol=1e-12)
    log_z = ref.log_z(W, b_h, b_v)
    np.testing.assert_allclose(table["probability"], np.exp(-energy - log_z), rtol=1e-10)
    assert table["probability"].sum() == pytest.approx(1.0, abs=1e-12)
    # Z, the sum of the weights, is the library's exact log partition function.
    assert np.log(table["weight"].sum()) == pytest.approx(trained.log_partition(), rel=1e-12)


def test_joint_table_names_states_as_the_tutorial_does(untrained):
    table = toy.joint_table(untrained)
    assert table["state"].iloc[0] == "none" and table["state"].iloc[-1] == "ABCDE"
    assert set(table["state"]) >= {"BE", "ACD", "BD", "ACE"}
    assert table["state"].is_unique


@pytest.mark.parametrize("which", ["untrained", "trained"])
def test_visible_table_matches_brute_force(which, request):
    rbm = request.getfixturevalue(which)
    table = toy.visible_table(rbm)
    np.testing.assert_array_equal(table[["A", "B", "C"]].to_numpy(), ref.states(3))
    np.testing.assert_allclose(table["probability"], ref.visible_marginal(*params(rbm)), rtol=1e-10)
    assert table["probability"].sum() == pytest.approx(1.0, abs=1e-12)
    freq = dict(zip(table["state"], table["data_frequency"]))
    assert freq["AC"] == pytest.approx(4 / 6) and freq["B"] == pytest.approx(2 / 6)
    assert sum(freq.values()) == pytest.approx(1.0)


def test_visible_table_marginalises_the_joint_table(trained):
    joint = toy.joint_table(trained)
    summed = joint.groupby(["A", "B", "C"])["probability"].sum().to_numpy()
    np.testing.assert_allclose(toy.visible_table(trained)["probability"], summed, rtol=1e-12)


def test_untrained_model_is_nearly_uniform_and_shares_the_seeds_start(untrained):
    p = toy.visible_table(untrained)["probability"]
    np.testing.assert_allclose(p, 1 / 8, atol=0.01)  # initial weights ~ N(0, 0.01^2), zero biases
    direct = BernoulliRBM(n_components=2, n_iter=0, device="cpu", random_state=0).fit(toy.toy_data())
    np.testing.assert_array_equal(untrained.components_, direct.components_)


def test_training_moves_the_mass_onto_the_observed_patterns(untrained, trained):
    before = toy.visible_table(untrained).set_index("state")["probability"]
    after = toy.visible_table(trained).set_index("state")["probability"]
    assert before[OBSERVED].sum() < 0.26  # 2 of 8 nearly equiprobable states
    assert after[OBSERVED].sum() > 0.9
    # Every observed pattern beats every unobserved one, and the 4:2 data favour AC.
    assert after[OBSERVED].min() > after.drop(OBSERVED).max()
    assert after["AC"] > after["B"]


def test_training_is_deterministic_for_a_seed(trained):
    again = toy.train_toy_rbm(random_state=0)
    other = toy.train_toy_rbm(random_state=1)
    for a, b in zip(params(trained), params(again)):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(trained.components_, other.components_)


def test_tables_accept_other_data_and_reject_bad_data(trained):
    table = toy.visible_table(trained, data=[[0, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 1]])
    assert table["data_frequency"].tolist() == [0.5, 0.25, 0, 0, 0, 0, 0, 0.25]
    with pytest.raises(ValueError, match="binary"):
        toy.visible_table(trained, data=[[0.5, 0, 1]])
    with pytest.raises(ValueError, match="3 columns"):
        toy.visible_table(trained, data=np.zeros((2, 4)))


def test_tables_refuse_models_too_large_to_list():
    big = BernoulliRBM.from_params(np.zeros((5, 8)), np.zeros(5), np.zeros(8))
    with pytest.raises(ValueError, match="2\\^\\(V\\+H\\)"):
        toy.joint_table(big)

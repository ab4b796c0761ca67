"""The code behind the notebooks and the build: explore, anatomy, plots, tables, report."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.special import expit  # noqa: E402

from rbmlib import BernoulliRBM  # noqa: E402
from rbmlib.report import anatomy, explore, pipeline, plots, tables

NAMES = tuple(f"class {i}" for i in range(10))


# ----------------------------------------------------------------------------- tables

def test_markdown_table_formats_and_aligns():
    df = pd.DataFrame({"n": [50000, 7], "share": [0.25, 0.5], "name": ["a|b", "c"]},
                      index=pd.Index(["x", "y"], name="row"))
    lines = tables.to_markdown(df, formats={"share": ".0%"}).splitlines()
    assert lines[0] == "| row | n | share | name |"
    assert lines[1] == "|:---|---:|---:|:---|"
    assert lines[2] == r"| x | 50,000 | 25% | a\|b |"
    assert tables.to_markdown(df, index=False).splitlines()[0] == "| n | share | name |"


# ----------------------------------------------------------------------------- explore

def test_class_balance_counts_every_class_and_totals():
    table = explore.class_balance({"a": [0, 0, 1], "b": [2]}, class_names=("x", "y", "z"))
    assert table.loc["x", "a"] == 2 and table.loc["z", "a"] == 0 and table.loc["z", "b"] == 1
    assert table.loc["Total"].tolist() == [3, 1]


def test_pick_per_class_is_grouped_deterministic_and_checked():
    y = np.repeat(np.arange(3), 5)
    rows = explore.pick_per_class(y, 2, random_state=1)
    assert y[rows].tolist() == [0, 0, 1, 1, 2, 2]
    assert rows.tolist() == explore.pick_per_class(y, 2, random_state=1).tolist()
    with pytest.raises(ValueError, match="class"):
        explore.pick_per_class(y, 6)


def test_stratified_rows():
    y = np.repeat(np.arange(4), 25)
    rows = explore.stratified_rows(y, 20, random_state=0)
    assert len(rows) == 20 and np.all(np.diff(rows) > 0)
    assert np.bincount(y[rows]).tolist() == [5, 5, 5, 5]
    assert len(explore.stratified_rows(y, None)) == 100


def _blobs():
    """Class 0 far away; classes 1 and 2 on top of each other; the rest in between."""
    rng = np.random.RandomState(0)
    centres = {0: (50, 50), 1: (0, 0), 2: (0.1, 0)}
    centres.update({c: (10 * c, -20) for c in range(3, 10)})
    y = np.repeat(np.arange(10), 40)
    X = np.array([centres[c] for c in y]) + rng.normal(size=(len(y), 2))
    return X, y


def test_neighbour_purity_finds_islands_and_overlaps():
    X, y = _blobs()
    table = explore.neighbour_purity(X, y, k=10, class_names=NAMES)
    by_class = table.set_index("class")
    assert by_class.loc["class 0", "purity"] == pytest.approx(1.0)
    assert by_class.loc["class 1", "purity"] < 0.8
    assert by_class.loc["class 1", "closest other class"] == "class 2"
    assert set(table["class"].iloc[-2:]) == {"class 1", "class 2"}
    assert table["purity"].is_monotonic_decreasing


def test_separation_summary_says_whether_a_reading_holds():
    X, y = _blobs()
    table = explore.neighbour_purity(X, y, k=10, class_names=NAMES)
    yes = explore.separation_summary(table, distinct=("class 0",), overlapping=("class 1", "class 2"))
    assert "bears out" in yes and "does not" not in yes
    no = explore.separation_summary(table, distinct=("class 1",), overlapping=("class 0", "class 2"))
    assert "does not fully bear out" in no
    with pytest.raises(ValueError, match="not in the table"):
        explore.separation_summary(table, distinct=("nope",))


def test_describe_map_says_all_or_how_many():
    assert "all 70,000 images" in explore.describe_map(70000, 70000, perplexity=30.0, k=10)
    assert "3,000 of the 70,000 images" in explore.describe_map(3000, 70000, perplexity=30.0, k=10)


def test_tsne_map_is_two_dimensional_and_seeded():
    X, y = _blobs()
    X = np.hstack([X, np.zeros((len(X), 3))])
    first = explore.tsne_map(X, n_pca=4, random_state=0)
    assert first.shape == (len(X), 2)
    np.testing.assert_allclose(first, explore.tsne_map(X, n_pca=4, random_state=0))


# ----------------------------------------------------------------------------- anatomy

def _coupled_rbm():
    """Four pixels and one hidden unit that is on when the top two are, and turns on the bottom two."""
    return BernoulliRBM.from_params(
        components=np.full((1, 4), 6.0), intercept_hidden=[-9.0], intercept_visible=np.full(4, -3.0),
        random_state=0, device="cpu")


def test_inpainting_keeps_the_known_pixels_and_follows_the_model():
    rbm = _coupled_rbm()
    X = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    known = np.array([True, True, False, False])
    # The bottom pair is bistable (both on keeps the hidden unit on), so the chain
    # visits "on" now and then: enough steps that the average reflects the model
    # (about 0.08 when the top is off), not the seed.
    filled = anatomy.inpaint(rbm, X, known, n_steps=4000, random_state=0)
    np.testing.assert_array_equal(filled[:, :2], X[:, :2])
    assert np.all((0 <= filled) & (filled <= 1))
    assert filled[0, 2:].mean() > 0.8  # top on -> hidden on -> bottom on
    assert filled[1, 2:].mean() < 0.2  # top off -> hidden off -> bottom off, whatever X held there
    np.testing.assert_array_equal(filled, anatomy.inpaint(rbm, X, known, n_steps=4000, random_state=0))


def test_inpainting_rejects_bad_arguments():
    rbm = _coupled_rbm()
    X = np.zeros((2, 4))
    with pytest.raises(ValueError, match="known"):
        anatomy.inpaint(rbm, X, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="n_steps"):
        anatomy.inpaint(rbm, X, np.ones(4, dtype=bool), n_steps=0)
    with pytest.raises(ValueError, match="burn_in"):
        anatomy.inpaint(rbm, X, np.ones(4, dtype=bool), n_steps=5, burn_in=5)


def test_top_half_mask():
    mask = anatomy.top_half_mask().reshape(28, 28)
    assert mask[:14].all() and not mask[14:].any()


def test_gibbs_chains_start_at_the_data_and_are_seeded():
    rbm = _coupled_rbm()
    init = np.array([[1.0, 1.0, 0.0, 0.0]])
    chains = anatomy.gibbs_chains(rbm, init, checkpoints=(1, 5), random_state=3)
    assert chains.shape == (1, 3, 4)
    np.testing.assert_array_equal(chains[:, 0], init)
    np.testing.assert_array_equal(chains, anatomy.gibbs_chains(rbm, init, checkpoints=(1, 5), random_state=3))
    with pytest.raises(ValueError, match="increasing"):
        anatomy.gibbs_chains(rbm, init, checkpoints=(5, 1))


def test_gibbs_step_matches_the_conditionals():
    rbm = _coupled_rbm()
    v = np.array([[1.0, 1.0, 0.0, 0.0]])
    p_h = rbm.transform(v)
    np.testing.assert_allclose(p_h, expit(v @ rbm.components_.T + rbm.intercept_hidden_), rtol=1e-6)


@pytest.fixture(scope="module")
def cd_curves():
    rng = np.random.RandomState(0)
    patterns = np.array([[1, 1, 0, 0, 1, 1], [0, 0, 1, 1, 0, 0]], dtype=np.float64)
    X = patterns[rng.randint(0, 2, 60)]
    return anatomy.compare_cd_variants(X, n_components=3, n_iter=3, batch_size=10, learning_rate=0.1,
                                       variants=anatomy.cd_variants(3), random_state=0)


def test_cd_variants_share_everything_but_the_sampler(cd_curves):
    assert list(cd_curves["variant"].unique()) == ["CD-1", "CD-3", "PCD-1"]
    assert cd_curves.groupby("variant").size().tolist() == [3, 3, 3]
    assert np.all(np.isfinite(cd_curves["log_likelihood"])) and np.all(cd_curves["log_likelihood"] < 0)
    # Six binary pixels: log P(v) of any data set is at least -6 log 2 for a good model, and the
    # exact value is what log_likelihood reports.
    assert cd_curves["log_likelihood"].max() > -6 * np.log(2)


def test_cd_summary_and_sentence(cd_curves):
    summary = anatomy.cd_variant_summary(cd_curves)
    assert list(summary.columns) == ["log-likelihood (held out)", "pseudo-likelihood", "reconstruction error",
                                     "Gibbs steps per update", "training seconds"]
    assert summary.iloc[:, 0].is_monotonic_decreasing
    assert summary.loc["CD-3", "Gibbs steps per update"] == 3
    sentence = anatomy.cd_variant_sentence(summary)
    assert summary.index[0] in sentence and "monitors" in sentence and "Gibbs step" in sentence


def test_cd_trend_sentence_finds_the_peak():
    curves = pd.DataFrame({
        "variant": ["A"] * 3 + ["B"] * 3, "epoch": [1, 2, 3] * 2,
        "log_likelihood": [-5.0, -4.0, -6.0, -5.0, -4.0, -3.0],
        "reconstruction_error": [0.3, 0.2, 0.1, 0.3, 0.2, 0.1],
    })
    text = anatomy.cd_trend_sentence(curves)
    assert "the held-out log-likelihood of A peaked after epoch 2 and ended 2.0 nats lower" in text
    assert "that of B was highest after the last epoch" in text
    assert "every sampler ended lower" in text
    assert anatomy.cd_trend_sentence(curves.assign(log_likelihood=np.nan)) == ""


def test_describe_training_reports_the_setup():
    rbm = BernoulliRBM(n_components=3, n_iter=2, k=2, persistent=False, random_state=0, device="cpu")
    rbm.fit(np.random.RandomState(0).rand(20, 4))
    text = anatomy.describe_training(rbm, 20)
    assert "3 hidden units" in text and "CD-2" in text and "2 epochs" in text


# ----------------------------------------------------------------------------- plots

@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_every_plot_returns_a_figure(cd_curves):
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 784), np.repeat(np.arange(10), 4)
    history = [{"epoch": e, "reconstruction_error": 1 / e, "pseudo_likelihood": -e} for e in (1, 2)]
    figures = [
        plots.image_grid(X[:5], 2, 3, row_labels=["a", "b"], col_labels=["c", "d", "e"]),
        plots.class_samples(X, y, explore.pick_per_class(y, 2)),
        plots.image_rows({"a": X[:3], "b": X[3:6]}, col_labels=list("xyz")),
        plots.gibbs_chains(X[:6].reshape(2, 3, 784), [1, 10]),
        plots.filters(rng.randn(12, 784), n=10, ncols=5),
        plots.tsne_scatter(rng.randn(40, 2), y),
        plots.training_curves(history),
        plots.cd_variant_curves(cd_curves),
    ]
    assert all(isinstance(fig, Figure) for fig in figures)
    with pytest.raises(ValueError, match="fit"):
        plots.image_grid(X[:7], 2, 3)


# ----------------------------------------------------------------------------- report

def test_presets_load():
    for preset in pipeline.PRESETS:
        assert isinstance(pipeline.load_parameters(preset), dict)
    assert pipeline.load_parameters("paper")["01_exploration"]["tsne_n"] is None
    with pytest.raises(ValueError, match="preset"):
        pipeline.load_parameters("poster")


def _write_notebook(path, source="x = 1"):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbformat.write(nb, path)
    return path


def test_stale_reason_tracks_source_and_parameters_not_file_times(tmp_path):
    source = _write_notebook(tmp_path / "01_demo.ipynb")
    executed = tmp_path / "executed.ipynb"
    assert pipeline.stale_reason(source, executed, {}) == "no executed copy yet"
    nb = nbformat.read(source, as_version=4)
    nb.metadata["rbm-report"] = {"preset": "paper", "parameters": {"a": [1, 2], "b": None},
                                 "source_sha256": pipeline.source_digest(source)}
    nbformat.write(nb, executed)
    assert pipeline.stale_reason(source, executed, {"a": [1, 2], "b": None}) is None
    assert pipeline.stale_reason(source, executed, {"a": [1, 3], "b": None}) == "parameters changed"
    _write_notebook(source, "x = 2")
    assert pipeline.stale_reason(source, executed, {"a": [1, 2], "b": None}) == "source changed"


def test_source_digest_ignores_outputs_and_metadata(tmp_path):
    path = _write_notebook(tmp_path / "nb.ipynb")
    before = pipeline.source_digest(path)
    content = json.loads(path.read_text())
    content["metadata"]["anything"] = 1
    content["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1"}]
    path.write_text(json.dumps(content))
    assert pipeline.source_digest(path) == before


def test_missing_quarto_is_explained(monkeypatch, capsys):
    monkeypatch.setattr(pipeline.shutil, "which", lambda name: None)
    assert pipeline.render_manuscript() is False
    message = capsys.readouterr().out
    assert "https://quarto.org/docs/get-started/" in message and "notebooks/executed" in message


def test_execute_notebook_keeps_the_old_copy_when_a_cell_fails(tmp_path):
    source = _write_notebook(tmp_path / "01_fails.ipynb", "raise RuntimeError('boom')")
    executed = tmp_path / "out" / "01_fails.ipynb"
    executed.parent.mkdir()
    executed.write_text("previous")
    with pytest.raises(pipeline.NotebookError, match="boom"):
        pipeline.execute_notebook(source, executed, {})
    assert executed.read_text() == "previous"
    assert (tmp_path / "out" / ".01_fails.failed.ipynb").exists()


def test_command_line_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        pipeline.main(["--help"])
    assert exit_info.value.code == 0
    assert "--preset" in capsys.readouterr().out

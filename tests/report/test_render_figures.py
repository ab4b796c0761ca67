"""The tuning figures fit the PDF's page: each is a short strip, whatever the number of parameters.

The tuning notebook stacks the five studies' figures of a kind (history, slices,
importances) as the panels of one figure, which Typst cannot break across
pages. Drawn here from a study as wide as the widest of the paper (seven
parameters: log-scaled, linear, integer and categorical), and saved as the
notebook's inline backend saves them (``bbox_inches="tight"``), so that labels
sticking out of the strip count too. The rendered PDF is checked in
test_render.py (test_pdf_shows_every_subcaption_of_every_figure).
"""

import io

import matplotlib
import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial
from PIL import Image

from rbmlib import paths
from rbmlib.report import plots, search

matplotlib.use("agg")

#: Five panels, their sub-captions, the gaps between them and the caption must fit the
#: text height of an A4 page with _quarto.yml's margins; this is each panel's share.
MAX_HEIGHT_IN = 1.4


def _study():
    dists = {"clf__C": FloatDistribution(1e-3, 100, log=True),
             "clf__dropout": FloatDistribution(0.0, 0.5),
             "clf__hidden_units": IntDistribution(128, 1024, log=True),
             "clf__learning_rate": FloatDistribution(1e-4, 2.5e-3, log=True),
             "rbm__batch_size": CategoricalDistribution([64, 128, 256, 512, 1024]),
             "rbm__learning_rate": FloatDistribution(0.01, 0.1, step=0.01),
             "rbm__n_components": IntDistribution(2048, 8192, step=2048)}
    study = optuna.create_study(direction="maximize")
    for i in range(8):
        params = {"clf__C": 10 ** (i % 5 - 3), "clf__dropout": 0.05 * i, "clf__hidden_units": 128 + 100 * i,
                  "clf__learning_rate": 1e-4 * (i + 1), "rbm__batch_size": [64, 128, 256, 512, 1024][i % 5],
                  "rbm__learning_rate": round(0.01 * (i + 1), 2), "rbm__n_components": 2048 * (1 + i % 4)}
        study.add_trial(create_trial(params=params, distributions=dists, value=0.8 + 0.01 * (i % 3)))
    return study


def _text_width_in() -> float:
    """The PDF's text width: A4 (21 cm) less _quarto.yml's Typst margins."""
    typst = yaml.safe_load((paths.ROOT / "_quarto.yml").read_text())["format"]["typst"]
    assert typst["papersize"] == "a4"
    margin = typst["margin"]["x"]
    assert margin.endswith("cm")
    return (21.0 - 2 * float(margin[:-2])) / 2.54


@pytest.fixture(autouse=True)
def _report_style():
    with matplotlib.rc_context():
        plots.use_report_style()
        yield
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("kind", ["history", "slices", "importances"])
def test_each_tuning_figure_is_a_strip_that_five_of_fit_a_page(kind):
    study = _study()
    draw = {"history": search.history, "slices": search.slices,
            "importances": lambda s, t: search.importances(s, t, random_state=0)}[kind]
    fig = draw(study, "Feed-forward network on RBM features")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")  # what the notebook stores
    width, height = (px / fig.dpi for px in Image.open(buffer).size)
    assert height <= MAX_HEIGHT_IN, f"{kind}: {height:.2f} in tall; five of them do not fit a page"
    assert width <= _text_width_in(), f"{kind}: {width:.2f} in wide, wider than the PDF's text"


@pytest.mark.parametrize("make_study", [lambda: _study(), lambda: _ten_parameter_study()], ids=["7", "10"])
def test_slices_name_every_parameter_and_keep_tick_labels_apart(make_study):
    fig = search.slices(make_study(), "x")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().replace("\n", "") for ax in panels] == sorted(make_study().best_trial.params)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in panels:
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        assert boxes, f"{ax.get_title()}: no tick label"
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), f"{ax.get_title()}: tick labels overlap"


def _ten_parameter_study():
    """As wide as protocol 2's RBM models: six RBM parameters and four of the network."""
    dists = {"rbm__n_components": IntDistribution(256, 8192, log=True),
             "rbm__learning_rate": FloatDistribution(1e-3, 0.3, log=True),
             "rbm__batch_size": IntDistribution(32, 1024, log=True),
             "rbm__n_iter": IntDistribution(5, 100, step=5),
             "rbm__persistent": CategoricalDistribution([True, False]),
             "rbm__sample_visible": CategoricalDistribution([False, True]),
             "clf__hidden_units": IntDistribution(64, 8192, log=True),
             "clf__learning_rate": FloatDistribution(1e-6, 1e-2, log=True),
             "clf__batch_size": IntDistribution(32, 512, log=True),
             "clf__dropout": FloatDistribution(0.0, 0.7)}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(16):
        trial = study.ask(dists)
        study.tell(trial, 0.8 + 0.1 * (trial.params["clf__dropout"] > 0.3) + 0.001 * i)
    return study


def test_importances_of_ten_parameters_name_each_in_a_strip_without_overlapping_labels():
    fig = search.importances(_ten_parameter_study(), "Feed-forward network on RBM features", random_state=0)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    width, height = (px / fig.dpi for px in Image.open(buffer).size)
    assert height <= MAX_HEIGHT_IN and width <= _text_width_in()
    renderer = fig.canvas.get_renderer()
    labels = [t for ax in fig.axes for t in ax.get_yticklabels() if t.get_text()]
    assert sorted(t.get_text() for t in labels) == sorted(_ten_parameter_study().best_trial.params)
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "two parameter names overlap"
    top_left = max(fig.axes[0].get_yticklabels(), key=lambda t: t.get_position()[1])
    assert top_left.get_text() == "clf__dropout"  # the one that decides the value, top left

"""rbmlib.report.speed: the benchmark's targets and figure from a table (no timing here)."""

import pandas as pd
import pytest

from rbmlib.report import speed


def _table(cd_1024=0.5, pcd_256=60_000.0, sklearn_256=20_000.0, original=10_000.0):
    rows = []
    for h, b in [(256, 64), (1024, 256)]:
        for impl, sps in [("rbmlib CD-1", 40_000.0), ("rbmlib PCD-1", pcd_256),
                          ("scikit-learn PCD-1", sklearn_256), ("original (autograd CD-1)", original)]:
            frac = cd_1024 if (impl == "rbmlib CD-1" and h == 1024) else 0.3
            rows.append({"implementation": impl, "n_components": h, "batch_size": b, "samples_per_s": sps,
                         "fraction_of_peak": frac, "matmul_peak_gflops": 200.0, "device": "cpu",
                         "threads": 2, "torch": "x"})
    return pd.DataFrame(rows)


def test_targets_report_measured_ratios_and_whether_they_are_met():
    t = speed.targets(_table()).set_index("required")
    assert t.loc["≥ 75%", "measured"].startswith("50% (of the 10 V H flops CD-1 performs: 62%)")
    assert t.loc["≥ 75%", "met"] == "no"
    assert t.loc["≥ 3×", "measured"] == "3.0×" and t.loc["≥ 3×", "met"] == "yes"
    assert t.loc["≥ 2×", "measured"] == "4.0×" and t.loc["≥ 2×", "met"] == "yes"


def test_figure_has_a_bar_per_implementation_and_setting():
    fig = speed.speed_figure(_table())
    assert len(fig.axes[0].patches) == 8 and fig.axes[0].get_yscale() == "log"


def test_transform_sentence_tells_whether_data_was_copied():
    lean = pd.DataFrame([{"seconds": 6.0, "output_gib": 1.0, "peak_rss_growth_gib": 1.0, "input_gib": 0.2}])
    fat = lean.assign(peak_rss_growth_gib=1.5)
    assert "was not copied" in speed.transform_sentence(lean)
    assert "held twice" in speed.transform_sentence(fat)


def test_missing_benchmark_says_how_to_make_it(tmp_path, monkeypatch):
    from rbmlib import paths

    monkeypatch.setattr(paths, "BENCHMARKS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="make bench"):
        speed.read_benchmark("cuda")

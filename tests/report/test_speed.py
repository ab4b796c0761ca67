"""rbmlib.report.speed: the benchmark's targets and figure from a table (no timing here)."""

import numpy as np
import pandas as pd
import pytest

from rbmlib.report import speed

V = 784
F32_PEAK, BF16_PEAK = 200.0, 1000.0  # GFLOP/s
SETTINGS = [(256, 64), (1024, 256)]


def _sps_at(share, h, peak=F32_PEAK):
    """Samples/s whose 10 V H flops per sample make ``share`` of ``peak``."""
    return share * peak * 1e9 / (10 * V * h)


def _table(cd_share=0.9, bf16_times=3.5, pcd_256=60_000.0, sklearn_256=20_000.0, original=10_000.0,
           learnergy=(20_000.0, 15_000.0), rbms=(30_000.0, 30_000.0), amx=True, peers=("learnergy", "rbms")):
    """A benchmark table in the CSV's layout; rbmlib CD-1 runs at 40,000 samples/s at (256, 64)."""
    rows = []

    def add(impl, library, algorithm, precision, h, b, sps, note=""):
        rows.append({"implementation": impl, "library": library, "algorithm": algorithm, "precision": precision,
                     "n_components": h, "batch_size": b, "samples_per_s": sps, "note": note,
                     "matmul_peak_gflops": F32_PEAK, "bf16_matmul_peak_gflops": BF16_PEAK, "device": "cpu",
                     "device_name": "Test CPU", "threads": 2, "torch": "x", "amx_bf16": amx, "native_bf16": True})

    for i, (h, b) in enumerate(SETTINGS):
        cd = 40_000.0 if h == 256 else _sps_at(cd_share, h)
        add("rbmlib CD-1", "rbmlib", "CD-1", "float32", h, b, cd)
        add("rbmlib PCD-1", "rbmlib", "PCD-1", "float32", h, b, pcd_256 if h == 256 else cd)
        add("rbmlib CD-1 (bf16)", "rbmlib", "CD-1", "bfloat16", h, b, bf16_times * cd)
        add("rbmlib PCD-1 (bf16)", "rbmlib", "PCD-1", "bfloat16", h, b, 2 * cd)
        add("original (autograd CD-1)", "original", "CD-1", "float32", h, b, original)
        add("scikit-learn PCD-1", "scikit-learn", "PCD-1", "float32", h, b, sklearn_256)
        if "learnergy" in peers:
            add("learnergy CD-1", "learnergy", "CD-1", "float32", h, b, learnergy[i])
            add("learnergy PCD-1", "learnergy", "PCD-1", "", h, b, np.nan, note="learnergy has no persistent CD")
        else:
            for algorithm in ("CD-1", "PCD-1"):
                add(f"learnergy {algorithm}", "learnergy", algorithm, "", h, b, np.nan,
                    note="not installed: pip install -e .[bench]")
        add("rbms CD-1", "rbms", "CD-1", "float32", h, b, rbms[i])
        add("rbms PCD-1", "rbms", "PCD-1", "float32", h, b, rbms[i])
    return pd.DataFrame(rows)


def _targets(table):
    t = speed.targets(table)
    return t.set_index(t["target"].str.split(":").str[0])


def test_flops_are_ten_v_h_per_sample_everywhere():
    assert speed.cd_flops_per_sample(1024) == 10 * V * 1024
    t = speed.complete(_table())
    row = t[(t.implementation == "rbmlib CD-1") & (t.n_components == 1024)].iloc[0]
    assert row["gflops"] == pytest.approx(0.9 * F32_PEAK)
    assert row["fraction_of_peak"] == pytest.approx(0.9)
    bf16 = t[(t.implementation == "rbmlib CD-1 (bf16)") & (t.n_components == 1024)].iloc[0]
    assert bf16["peak_gflops"] == BF16_PEAK  # a bf16 row is measured against the bf16 peak
    assert bf16["fraction_of_peak"] == pytest.approx(3.5 * 0.9 * F32_PEAK / BF16_PEAK)


def test_float32_share_of_the_peak_against_85_percent():
    met = _targets(_table(cd_share=0.9)).loc["float32 CD-1 at H=1024, B=256"]
    assert met["measured"] == "90% (180 of 200 GFLOP/s)" and met["required"] == "≥ 85%" and met["met"] == "yes"
    assert _targets(_table(cd_share=0.8)).loc["float32 CD-1 at H=1024, B=256", "met"] == "no"


def test_bf16_needs_three_times_float32_and_half_the_bf16_peak():
    key = "bf16 CD-1 at H=1024, B=256"
    met = _targets(_table(bf16_times=3.5)).loc[key]
    # 3.5 x 180 GFLOP/s = 630 of the bf16 peak's 1000.
    assert met["measured"] == "3.5× float32, 63% of the bf16 peak (630 of 1000 GFLOP/s)" and met["met"] == "yes"
    assert _targets(_table(bf16_times=2.0)).loc[key, "met"] == "no"  # 2× and 36%: both short
    assert _targets(_table(bf16_times=3.5, cd_share=0.5)).loc[key, "met"] == "no"  # 3.5× but 35% of the peak


def test_bf16_row_says_when_the_cpu_has_no_amx_and_still_reports_the_ratios():
    row = _targets(_table(bf16_times=1.5, amx=False)).loc["bf16 CD-1 at H=1024, B=256"]
    assert row["measured"] == "no AMX on this CPU: measured 1.5× float32, 27% of the bf16 peak (270 of 1000 GFLOP/s)"
    assert row["met"] == "no"
    with_amx = _targets(_table(bf16_times=1.5, amx=True)).loc["bf16 CD-1 at H=1024, B=256", "measured"]
    assert not with_amx.startswith("no AMX")


def test_scikit_learn_and_original_ratios():
    t = _targets(_table(pcd_256=60_000.0, sklearn_256=20_000.0, original=10_000.0))
    assert t.loc["PCD-1 at H=256, B=64", "measured"] == "3.0×" and t.loc["PCD-1 at H=256, B=64", "met"] == "yes"
    # rbmlib CD-1: 40,000 at (256, 64) and 22,421 at (1024, 256) over 10,000: the worst is 2.2×.
    worst = t.loc["CD-1, worst setting"]
    assert worst["measured"] == "2.2× (H=1024, B=256)" and worst["met"] == "yes"
    assert _targets(_table(original=15_000.0)).loc["CD-1, worst setting", "met"] == "no"  # 1.5×
    assert _targets(_table(sklearn_256=30_000.0)).loc["PCD-1 at H=256, B=64", "met"] == "no"  # 2×


def test_peers_worst_ratio_same_algorithm_and_where():
    t = _targets(_table(learnergy=(20_000.0, 15_000.0), rbms=(30_000.0, 30_000.0)))
    learnergy = t.loc["rbmlib (float32) over learnergy, same algorithm, every setting learnergy runs"]
    # CD-1: 40,000 / 20,000 = 2.0× and 22,421 / 15,000 = 1.5×; PCD-1 is not supported.
    assert learnergy["measured"].startswith("1.5× (CD-1, H=1024, B=256; 2 settings)")
    assert "PCD-1 not run at 2 settings: learnergy has no persistent CD" in learnergy["measured"]
    assert learnergy["met"] == "yes"
    rbms = t.loc["rbmlib (float32) over rbms, same algorithm, every setting rbms runs"]
    # At (1024, 256) rbms runs 30,000 against rbmlib's 22,421 (CD-1 and PCD-1 alike): behind.
    assert rbms["measured"] == "0.7× (CD-1, H=1024, B=256; 4 settings)" and rbms["met"] == "no"


def test_a_peer_that_did_not_run_is_reported_not_dropped():
    t = _targets(_table(peers=("rbms",)))
    row = t.loc["rbmlib (float32) over learnergy, same algorithm, every setting learnergy runs"]
    assert row["measured"] == "not measured: not installed: pip install -e .[bench]" and row["met"] == "n/a"
    absent = _table()
    absent = absent[absent.library != "rbms"]
    assert _targets(absent).loc["rbmlib (float32) over rbms, same algorithm, every setting rbms runs",
                                "measured"] == "not measured: not in this run"


def test_a_table_from_before_the_bf16_and_peer_rows_still_reads():
    # The committed CSV's older layout: no library / algorithm / precision / bf16 columns, 8 V H gflops.
    old = _table()[lambda d: ~d.library.isin(["learnergy", "rbms"]) & (d.precision == "float32")]
    old = old.drop(columns=["library", "algorithm", "precision", "note", "bf16_matmul_peak_gflops",
                            "amx_bf16", "native_bf16", "device_name"])
    old["gflops"] = 8 * V * old["n_components"] * old["samples_per_s"] / 1e9
    t = _targets(old)
    assert t.loc["float32 CD-1 at H=1024, B=256", "measured"].startswith("90%")  # recounted at 10 V H
    assert t.loc["bf16 CD-1 at H=1024, B=256", "met"] == "n/a"
    assert t.loc["PCD-1 at H=256, B=64", "measured"] == "3.0×"
    assert len(speed.speed_figure(old).axes[0].patches) == 2 * 2  # rbmlib and original, two settings


def test_targets_can_print_themselves(capsys):
    out = speed.targets(_table(), echo=True)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(out) == 6
    assert printed[0] == ("float32 CD-1 at H=1024, B=256: share of the float32 matmul peak (10 V H flops per "
                          "sample): 90% (180 of 200 GFLOP/s) (target ≥ 85%, met: yes)")
    assert speed.targets(_table()).equals(out)


def test_figure_has_a_panel_per_algorithm_bars_per_implementation_and_both_limits():
    fig = speed.speed_figure(_table())
    cd, pcd = fig.axes
    # CD-1: rbmlib float32 and bf16, original, learnergy, rbms; PCD-1: rbmlib x 2, scikit-learn, rbms
    # (learnergy has no PCD-1 bars). Two settings each.
    assert len(cd.patches) == 5 * 2 and len(pcd.patches) == 4 * 2
    assert cd.get_yscale() == "log" and cd.get_title() == "CD-1" and pcd.get_title() == "PCD-1"
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert len(legend) == 8 and sum("arithmetic limit" in label for label in legend) == 2
    # The float32 limit at H=256 is the peak over 10 V H flops per sample.
    limit = cd.collections[0].get_offsets()[0, 1]
    assert limit == pytest.approx(F32_PEAK * 1e9 / (10 * V * 256))


def test_transform_sentence_tells_whether_data_was_copied():
    lean = pd.DataFrame([{"seconds": 6.0, "output_gib": 1.0, "peak_rss_growth_gib": 1.0, "input_gib": 0.2}])
    fat = lean.assign(peak_rss_growth_gib=1.5)
    assert "was not copied" in speed.transform_sentence(lean)
    assert "4,096 features" in speed.transform_sentence(lean)
    assert "held twice" in speed.transform_sentence(fat)
    assert "256 features" in speed.transform_sentence(lean.assign(n_components=256))


def test_missing_benchmark_says_how_to_make_it(tmp_path, monkeypatch):
    from rbmlib import paths

    monkeypatch.setattr(paths, "BENCHMARKS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="make bench"):
        speed.read_benchmark("cuda")

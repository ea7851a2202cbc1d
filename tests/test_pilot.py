"""The training-regime pilot: paired gains, gate statistics and cost per regime."""
import json

import pytest

from senet_core.cli import main
from senet_core.study.spec import profile
from senet_core.study.pilot import PROFILES, run_pilot


def test_the_four_regimes_differ_from_the_base_in_one_dimension_each():
    base = profile("pilot_base")
    assert base.limit_val is None                    # the whole 10,000-image test set
    changed = {name: {k for k in ("limit_train", "epochs", "image_size")
                      if getattr(profile(name), k) != getattr(base, k)} for name in PROFILES}
    assert changed == {"pilot_base": set(), "pilot_data": {"limit_train"}, "pilot_long": {"epochs"},
                       "pilot_28px": {"image_size"}}


def test_pilot_summary_of_a_smoke_regime(tmp_path):
    summary = run_pilot(("smoke",), tmp_path / "results", tmp_path / "runs", "cpu")
    assert json.loads((tmp_path / "results" / "pilot" / "summary.json").read_text()) == summary
    (regime,) = summary["regimes"]
    assert regime["train_images"] == 256 and regime["sign_holds"] in (True, False)
    assert regime["seeds"] == [0] and len(regime["gain_per_seed"]) == 1 and regime["gain_ci95"] is None
    assert regime["gain_mean"] == pytest.approx(regime["top1_err"]["no SE"]["0"] - regime["top1_err"]["SE"]["0"],
                                                abs=0.01)
    stages = regime["gates"]["0"]
    # The last block of every stage, and every block of the last stage (the blocks of Fig. 6).
    assert [s["block"] for s in stages] == ["layer1.2.se", "layer2.2.se", "layer3.0.se", "layer3.1.se", "layer3.2.se"]
    assert all(0 <= s["mean |gate - 0.5|"] <= 0.5 and s["between-class spread"] >= 0 for s in stages)
    assert regime["wall_seconds_per_run"] > 0 and "commit" in summary["provenance"]


def test_cli_pilot_names_an_unknown_regime_on_one_line(capsys):
    assert main(["pilot", "--profiles", "pilot_huge", "--device", "cpu"]) == 2
    assert "unknown profile 'pilot_huge'" in capsys.readouterr().err


def test_the_pilot_table_reads_the_committed_summary_and_names_the_studys_regime(tmp_path):
    from pathlib import Path

    from senet_core.study.pilot import pilot_table

    root = Path(__file__).resolve().parent.parent / "results"
    table = pilot_table(root)
    assert list(table.index) == ["base", "data", "long", "28px"]
    assert list(table["the study's"]).count("yes") == 1 and table.loc["base", "the study's"] == "yes"
    assert table.loc["long", "sign holds"] == "yes" and table.loc["base", "sign holds"] == "no"
    assert table.loc["28px", "SE gain [95 % CI]"].startswith("-0.73 [")     # SE loses at 28 px
    with pytest.raises(FileNotFoundError, match="senet pilot"):
        pilot_table(tmp_path)
    from senet_core.study.pilot import pilot_provenance

    said = pilot_provenance(root).splitlines()
    assert said[0].startswith("base: measured at reduced scale: pilot_base profile") and len(said) == 4

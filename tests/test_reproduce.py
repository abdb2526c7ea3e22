"""The paper runner at tiny size: shared baseline and mining across the HL variants, |Z| and
alpha sweeps, the tables with intervals, the figures; McCrolin's tables and ablations."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from test_stages import DEMO, _mrc_config, _tiny  # noqa: E402


def test_xmrc_tables_and_figures_share_their_runs(tmp_path):
    from xmrc_jax import reproduce
    c = _mrc_config()
    c.data.eval = [dict(path=os.path.join(DEMO, f"mlqa.{lang}.json"), language=lang, name="mlqa",
                        limit=8) for lang in ("en", "es", "de", "ar", "hi", "vi")]
    c.eval.track_every, c.eval.track_questions = 1, 4
    runs = reproduce.Runs(str(tmp_path), c)
    names = reproduce.xmrc_runs(runs, [0], [1, 20], [0.3, 0.5])
    seed = tmp_path / "seed_0"
    # one baseline for everything, one mining per |Z|
    assert (seed / "full" / "baseline").is_symlink() and (seed / "mml" / "mine").is_symlink()
    assert not (seed / "z1" / "mine").is_symlink() and (seed / "z1_mml" / "mine").is_symlink()
    assert not (seed / "z20").exists() and not (seed / "alpha0.5").exists()   # = full
    assert (seed / "alpha0.3" / "hl_aacl" / "hf").exists()
    assert json.load(open(seed / "no_hl" / "hl_aacl" / "artifact.json"))["config"][
        "hl.variant"] == "mrc"
    out, md = reproduce.xmrc_report(runs, [0], [1, 20], [0.3, 0.5], names)
    t = out["tables"]["mlqa/tables_4_5"]
    assert set(t) == {"en", "es", "de", "ar", "hi", "vi", "avg (en es de ar hi vi)", "avg (all)"}
    row = t["avg (en es de ar hi vi)"]
    assert row["f1"]["low"] <= row["f1"]["mean_diff"] <= row["f1"]["high"]
    assert abs(row["f1"]["mean_diff"] - (row["ours"][0] - row["baseline"][0])) < 1e-6
    assert set(out["tables"]["mlqa/table_6"]) == {"full", "no_hl", "no_aacl", "mml", "base"}
    assert set(out["tables"]["mlqa/figure_2"]["hl"]) == {1, 20}
    for part in ("Table 2", "Tables 4-5", "Table 6", "Figure 2", "Figure 3", "Figure 4"):
        assert part in md
    tracked = json.load(open(seed / "full" / "hl_aacl" / "tracked.json"))
    assert [r["step"] for r in tracked] == [1, 2] and len(tracked[0]["questions"]) == 4
    assert (tmp_path / "report" / "figure3.png").exists()
    assert (tmp_path / "report" / "figure2.png").stat().st_size > 10_000
    assert (tmp_path / "report" / "figure4.png").exists()


def test_mccrolin_tables_and_ablations(tmp_path):
    from configs import mccrolin
    from xmrc_jax import reproduce
    c = _tiny(mccrolin.get_config("demo"))
    c.mccrolin.rounds = 1
    c.retrieval.languages = ("en", "es", "zh")
    c.retrieval.max_passage_length, c.retrieval.max_sentence_length = 64, 32
    runs = reproduce.Runs(str(tmp_path), c)
    reproduce.mccrolin_runs(runs, [0])
    out, md = reproduce.mccrolin_report(runs, [0])
    t = out["tables"]["passage/initial_vs_mccrolin"]
    assert set(t) == {"en", "es", "zh", "avg"}
    assert 0.0 <= t["avg"]["mcnemar_r1"]["p_value"] <= 1.0
    assert set(out["tables"]["sentence/ablations"]) == {"no_update", "no_xlc", "no_rank", "no_ha"}
    cfg = json.load(open(tmp_path / "seed_0" / "mc_no_rank" / "config.json"))
    assert cfg["mccrolin"]["gammas"] == [1.0, 0.0, 1.0]
    assert "passage level: initial encoder vs McCrolin" in md

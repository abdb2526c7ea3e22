"""The replication driver at tiny size (runs (a)-(c) sharing baseline and mining, the control's
objective, the results folder and the report regenerated from it alone), McCrolin's report, and
the host-memory re-execution of the entry points."""

import json
import logging
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from test_stages import _mrc_config, _tiny  # noqa: E402


def test_control_ablation_is_l_mrc_alone():
    from xmrc_jax.models import EncoderConfig, build_model
    from xmrc_jax.tasks import span_qa
    c = _mrc_config(ablation="control")
    span_qa.resolve(c)
    assert (c.hl.variant, c.hl.alpha) == ("mrc", 0.0)
    module = build_model(EncoderConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                       num_hidden_layers=1, num_attention_heads=2,
                                       max_position_embeddings=20), "span")
    rng = np.random.default_rng(0)
    n, length = 3, 12
    batch = dict(input_ids=rng.integers(3, 50, (n, length)).astype(np.int32),
                 attention_mask=np.ones((n, length), np.int32),
                 token_type_ids=np.zeros((n, length), np.int32),
                 context_mask=np.ones((n, length), bool), question_mask=np.ones((n, length), bool),
                 start_positions=np.array([2, 3, 0], np.int32), end_positions=np.array([4, 3, 0], np.int32),
                 answer_in_window=np.array([1, 1, 0], bool),
                 cand_starts=np.zeros((n, 2), np.int32), cand_ends=np.zeros((n, 2), np.int32),
                 cand_valid=np.zeros((n, 2), bool))
    params = {"model": module.init(jax.random.PRNGKey(0), batch["input_ids"], batch["attention_mask"],
                                   batch["token_type_ids"])["params"]}
    key = jax.random.PRNGKey(1)
    control, aux = span_qa.objective("hl_aacl", module, c)(params, batch, key)
    baseline, _ = span_qa.objective("mrc", module, c)(params, batch, key)
    np.testing.assert_allclose(float(control), float(baseline), rtol=1e-6)
    assert set(aux) == {"loss_mrc"}          # no HL term, no contrastive term computed
    assert span_qa.extra_params("hl_aacl", c) is None


def test_replication_runs_results_folder_and_report(tmp_path, caplog):
    from xmrc_jax import replication
    from xmrc_jax.replication_report import write_report
    from xmrc_jax.reproduce import Runs
    c = _mrc_config()
    c.data.eval = [dict(path=os.path.join(ROOT, "data", "demo", f"mlqa.{lang}.json"), language=lang,
                        name="mlqa", limit=8) for lang in ("en", "es", "de", "ar", "hi", "vi")]
    root, results = tmp_path / "runs", tmp_path / "results"
    replication.run_xmrc(Runs(str(tmp_path / "none"), c), [0], [], results=str(results))
    assert not (tmp_path / "none").exists()          # no run named: nothing trained
    with pytest.raises(ValueError, match="no dev-best setting"):
        replication.run_xmrc(Runs(str(root), c), [0], ["base", "full", "best"])
    # A dev-only control trained first: the test run (b) takes its trained second stage and
    # only scores it; (c) has no dev-only twin here and trains its own.
    replication.run_diagnostics(Runs(str(root), c), [0], ["control"])
    seed = root / "seed_0"
    twin = seed / "diag_control" / "hl_aacl"
    record, trained = (twin / "artifact.json").read_text(), (twin / "metrics.jsonl").read_text()
    assert replication.dev_only_twin(Runs(str(root), c), 0, replication.XMRC_RUNS["control"][2]) \
        == "diag_control"
    assert replication.dev_only_twin(Runs(str(root), c), 0, replication.XMRC_RUNS["full"][2]) \
        is None
    with caplog.at_level(logging.INFO, logger="xmrc_jax"):
        replication.run_xmrc(Runs(str(root), c), [0], ["base", "full", "control"])
        full_log = (seed / "full" / "hl_aacl" / "metrics.jsonl").read_text()
        full_eval = (seed / "full" / "evaluate" / "results.json").stat().st_mtime_ns
        # best added to the seed later, alone: it takes full's Z and leaves full as it is
        replication.run_xmrc(Runs(str(root), c), [0], ["best"], best="alpha0.1+tau1")
    assert (seed / "full" / "hl_aacl" / "metrics.jsonl").read_text() == full_log
    assert (seed / "full" / "evaluate" / "results.json").stat().st_mtime_ns == full_eval
    assert os.path.realpath(seed / "best" / "mine") == os.path.realpath(seed / "full" / "mine")
    assert os.path.realpath(seed / "control" / "hl_aacl") == str(twin)
    assert "seed 0, control: its second stage is the dev-only diag_control's" in caplog.text
    assert caplog.text.count("hl_aacl: done with these settings") == 1      # not trained again
    assert (twin / "artifact.json").read_text() == record
    assert (twin / "metrics.jsonl").read_text() == trained
    assert not (seed / "full" / "hl_aacl").is_symlink()
    art = json.load(open(seed / "best" / "hl_aacl" / "artifact.json"))["config"]
    assert (art["hl.alpha"], art["hl.tau"], art["hl.ablation"]) == (0.1, 1.0, "full")
    assert (seed / "best" / "mine").is_symlink() and (seed / "best" / "evaluate").is_dir()
    assert (seed / "control" / "baseline").is_symlink() and (seed / "control" / "mine").is_symlink()
    art = json.load(open(seed / "control" / "hl_aacl" / "artifact.json"))["config"]
    assert (art["hl.variant"], art["hl.alpha"]) == ("mrc", 0.0)
    steps = [[json.loads(line)["step"] for line in open(seed / r / "hl_aacl" / "metrics.jsonl")][-1]
             for r in ("full", "control")]
    assert steps[0] == steps[1]              # the control trains as many further steps
    replication.collect_all(str(root), str(results), [0])
    for run in ("full", "control"):          # the control's second stage: the twin's files
        kept = {p.relative_to(results / "seed_0" / run).as_posix()
                for p in (results / "seed_0" / run).rglob("*") if p.is_file()}
        assert {"config.json", "evaluate/results.json", "evaluate/scores_mlqa_en.json",
                "evaluate/predictions_mlqa_en.json", "hl_aacl/metrics.jsonl"} <= kept
        assert "mine/artifact.json" not in kept or run == "full"    # shared: full's to copy
    assert (results / "seed_0" / "control" / "hl_aacl" / "metrics.jsonl").read_text() == trained
    assert not any("checkpoints" in k or k.endswith(".safetensors") for k in kept)
    scores = json.load(open(results / "seed_0" / "base" / "evaluate" / "scores_mlqa_es.json"))
    res = json.load(open(seed / "base" / "evaluate" / "results.json"))["results"]["mlqa"]["es"]
    assert abs(100 * np.mean([v[1] for v in scores.values()]) - res["f1"]) < 1e-6
    shutil.rmtree(root)                      # the report needs the results folder only
    text = write_report(str(results))
    report = json.load(open(results / "report.json"))["xmrc"]["datasets"]["mlqa"]
    assert set(report["f1_em"]) == {"base", "full", "control", "best"}
    assert "(c) HL + AA-CL at the dev-best setting `tau1+alpha0.1`" in text
    assert set(report["f1_em"]["base"]) == {"en", "es", "de", "ar", "hi", "vi", "avg6", "avg"}
    d = report["paired"]["full-control"]["all"]
    f1 = report["f1_em"]
    assert abs(d["f1"]["mean_diff"] - (f1["full"]["avg"][0] - f1["control"]["avg"][0])) < 1e-6
    assert d["f1"]["low"] <= d["f1"]["mean_diff"] <= d["f1"]["high"] and d["questions"] == 48
    for part in ("(b) control", "EM@k", "full - control", "full - base", "sequence 64"):
        assert part in text
    assert (results / "README.md").read_text() == text


def test_setting_name_reads_missing_settings_as_their_defaults(tmp_path):
    """A run's setting is named by its changes to full's config; a config written before a
    setting existed (seed 0's committed full: no hl.learning_rate, hl.negative None) has it at
    its default, so the dev-best tau 1 run is ``tau1``, not ``tau1+lr0``."""
    from xmrc_jax.replication_report import setting_name
    config = json.load(open(os.path.join(ROOT, "results", "replication", "seed_0", "full",
                                         "config.json")))
    config["hl"].pop("learning_rate", None)
    config["hl"]["negative"] = None
    for name, hl in (("full", {}), ("best", {"learning_rate": 0.0, "negative": "not_gold",
                                             "tau": 1.0}),
                     ("other", {"learning_rate": 3e-5, "negative": "no_overlap"})):
        (tmp_path / name).mkdir()
        json.dump(dict(config, hl={**config["hl"], **hl}), open(tmp_path / name / "config.json", "w"))
    assert setting_name(str(tmp_path / "best"), str(tmp_path / "full")) == "tau1"
    assert setting_name(str(tmp_path / "other"), str(tmp_path / "full")) == "lr3e-05+no_overlap"
    assert setting_name(str(tmp_path / "full"), str(tmp_path / "full")) == "full"


def test_report_pools_seeds(tmp_path):
    """Several seeds: per-language means over seeds, each seed's average, the paired difference
    on each question's seed mean and McNemar over (seed, question) pairs, checked by hand on a
    results folder of two seeds of three made-up runs."""
    from xmrc_jax.replication_report import evaluated_seeds, write_report
    rng = np.random.default_rng(0)
    langs, config = ("en", "es"), json.load(open(os.path.join(
        ROOT, "results", "replication", "seed_0", "base", "config.json")))
    scores = {}
    for s in (0, 1):
        for run in ("base", "control", "full"):
            d = tmp_path / f"seed_{s}" / run / "evaluate"
            d.mkdir(parents=True)
            json.dump(dict(config, seed=s), open(d.parent / "config.json", "w"))
            res = {}
            for lang in langs:
                em = rng.random(30) < 0.5
                f1 = np.where(em, 1.0, rng.random(30) * 0.8)
                q = {f"q{i}": [float(e), float(f)] for i, (e, f) in enumerate(zip(em, f1))}
                scores[s, run, lang] = q
                json.dump(q, open(d / f"scores_mlqa_{lang}.json", "w"))
                res[lang] = dict(f1=100 * f1.mean(), exact_match=100 * em.mean(),
                                 em_at={"1": 100 * em.mean(), "3": 100.0})
            json.dump(dict(results=dict(mlqa=res), model=f"{run} model"),
                      open(d / "results.json", "w"))
    assert evaluated_seeds(str(tmp_path)) == [0, 1]
    text = write_report(str(tmp_path))
    out = json.load(open(tmp_path / "report.json"))["xmrc"]
    assert out["seeds"] == [0, 1] and "seeds 0, 1" in text
    f1 = lambda s, run, lang: 100 * np.mean([v[1] for v in scores[s, run, lang].values()])  # noqa: E731
    em = lambda s, run: 100 * np.mean([v[0] for lang in langs  # noqa: E731
                                       for v in scores[s, run, lang].values()])
    want = np.mean([np.mean([f1(s, "full", lang) for lang in langs]) for s in (0, 1)])
    assert abs(out["datasets"]["mlqa"]["f1_em"]["full"]["avg"][0] - want) < 1e-9
    d = out["datasets"]["mlqa"]["paired"]["full-control"]["all"]
    by_seed = [np.mean([f1(s, "full", lang) - f1(s, "control", lang) for lang in langs])
               for s in (0, 1)]
    np.testing.assert_allclose(d["by_seed"], by_seed, rtol=1e-9)
    assert abs(d["f1"]["mean_diff"] - np.mean(by_seed)) < 1e-9 and d["questions"] == 60
    assert abs(d["exact_match"]["mean_diff"] - np.mean([em(s, "full") - em(s, "control")
                                                        for s in (0, 1)])) < 1e-9
    pairs = [(scores[s, "control", lang][q][0], scores[s, "full", lang][q][0])
             for s in (0, 1) for lang in langs for q in scores[s, "full", lang]]
    assert d["mcnemar_em"]["b01"] == sum(a == 0 and b == 1 for a, b in pairs)
    assert d["mcnemar_em"]["b10"] == sum(a == 1 and b == 0 for a, b in pairs)
    row = next(x for x in text.splitlines() if x.startswith("| full - control |"))
    # the seeds as the unit: Student's t over the per-seed differences (t(0.975, 1) = 12.706)
    half = 12.7062 * np.std(by_seed, ddof=1) / np.sqrt(2)
    assert d["by_seed_interval"]["low"] == pytest.approx(np.mean(by_seed) - half, abs=1e-3)
    assert d["by_seed_interval"]["high"] == pytest.approx(np.mean(by_seed) + half, abs=1e-3)
    assert row.endswith(", ".join(f"{v:+.2f}" for v in by_seed) + f"; {np.mean(by_seed):+.2f} "
                        f"[{np.mean(by_seed) - half:+.2f}, {np.mean(by_seed) + half:+.2f}] |")
    # A seed still under way (without a run the first seed has) is left out whole, said so
    shutil.rmtree(tmp_path / "seed_1" / "control")
    text = write_report(str(tmp_path))
    out = json.load(open(tmp_path / "report.json"))["xmrc"]
    assert (out["seeds"], out["runs"]) == ([0], ["base", "control", "full"])
    assert out["seeds_left_out"] == {"seed_1": ["control"]}
    assert "Seed 1 is left out until it has control (not evaluated yet)." in text
    shutil.rmtree(tmp_path / "seed_0" / "control")        # only the runs every seed has
    write_report(str(tmp_path))
    out = json.load(open(tmp_path / "report.json"))["xmrc"]
    assert (out["seeds"], out["runs"]) == ([0, 1], ["base", "full"])


def test_mccrolin_report_against_the_starting_encoder(tmp_path):
    from configs import mccrolin
    from xmrc_jax import replication
    from xmrc_jax.replication_report import mccrolin_tables, write_report
    from xmrc_jax.reproduce import Runs
    c = _tiny(mccrolin.get_config("demo"))
    c.mccrolin.rounds = 1
    c.retrieval.languages = ("en", "es", "zh")
    c.retrieval.max_passage_length, c.retrieval.max_sentence_length = 64, 32
    replication.run_mccrolin(Runs(str(tmp_path / "runs" / "mccrolin"), c), [0])
    replication.collect_all(str(tmp_path / "runs"), str(tmp_path / "results"), [0])
    out, md = mccrolin_tables(str(tmp_path / "results" / "seed_0"))
    row = out["mc_full/passage"]["avg"]
    ranks = json.load(open(tmp_path / "results" / "seed_0" / "mc_full" / "retrieval" / "ranks.json"))
    hits = [r == 1 for lang in ("es", "zh") for r in ranks["initial"]["passage"][lang].values()]
    assert abs(row["initial"][0] - 100 * np.mean(hits)) < 1e-9 and row["queries"] == len(hits)
    assert abs(row["R@1"]["mean_diff"] - (row["final"][0] - row["initial"][0])) < 1e-9
    assert {"mc_full/passage", "mc_full/sentence", "mc_no_update/passage",
            "mc_no_update/sentence", "teacher_update/passage", "teacher_update/sentence"} <= set(out)
    # the ablation pairs the two runs' selected rounds on the same queries
    ab = json.load(open(tmp_path / "results" / "seed_0" / "mc_no_update" / "retrieval" / "ranks.json"))
    final = next(k for k in ab if k != "initial")
    rr = [1 / r if 1 <= r <= 10 else 0 for lang in ("es", "zh")
          for r in ab[final]["sentence"][lang].values()]
    d = out["teacher_update/sentence"]
    assert abs(d["a"][1] - 100 * np.mean(rr)) < 1e-9
    assert abs(d["MRR@10"]["mean_diff"] - (d["b"][1] - d["a"][1])) < 1e-9
    r10 = [1 <= r <= 10 for lang in ("es", "zh") for r in ranks["initial"]["passage"][lang].values()]
    assert abs(out["summary"]["passage/e5-small (start)"]["R@10"] - 100 * np.mean(r10)) < 1e-9
    assert out["rounds"]["mc_full"]["best_round"] == 1 and set(out["rounds"]["mc_full"]["dev"]) == {"0", "1"}
    text = "\n".join(md)
    assert "McNemar" in text and "Teacher update" in text and "round 1" in text
    # Rounds of another length: their own folder in the workdir and in the results, their own
    # section of the report; the first runs' files stay where they were.
    assert replication.mccrolin_group(0.25) == "mccrolin"
    assert replication.mccrolin_group(1) == "mccrolin_1ep"
    first = (tmp_path / "results" / "seed_0" / "mc_full" / "retrieval" / "ranks.json").read_text()
    shutil.copytree(tmp_path / "runs" / "mccrolin", tmp_path / "runs" / "mccrolin_1ep",
                    symlinks=True)
    longer = tmp_path / "runs" / "mccrolin_1ep" / "seed_0" / "mc_full" / "config.json"
    config = json.load(open(longer))
    config["train"]["epochs"] = 1.0
    json.dump(config, open(longer, "w"))
    replication.collect_all(str(tmp_path / "runs"), str(tmp_path / "results"), [0])
    assert (tmp_path / "results" / "mccrolin_1ep" / "seed_0" / "mc_no_update" / "retrieval"
            / "ranks.json").exists()
    assert (tmp_path / "results" / "seed_0" / "mc_full" / "retrieval" / "ranks.json"
            ).read_text() == first
    text = write_report(str(tmp_path / "results"))
    report = json.load(open(tmp_path / "results" / "report.json"))
    assert report["mccrolin"]["rounds_of"] == f"1 round of {c.train.epochs:g} epochs"
    assert report["mccrolin_1ep"]["rounds_of"] == "1 round of 1 epoch"
    assert report["mccrolin_1ep"]["teacher_update/passage"] == report["mccrolin"][
        "teacher_update/passage"]                           # the same ranks, copied
    assert "## McCrolin (1 round of 1 epoch): the starting encoder (e5-small) against " \
           "the trained one (`mccrolin_1ep/`)" in text


def test_huge_page_environment(tmp_path):
    from xmrc_jax import hostmem
    thp = tmp_path / "enabled"
    thp.write_text("always [madvise] never\n")
    env = hostmem.tuned_environment({"PATH": "/bin"}, "linux", str(thp))
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1" and env["PATH"] == "/bin"
    assert hostmem.tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "linux",
                                     str(thp))["GLIBC_TUNABLES"] == (
        "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
    for environ, platform in (({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "linux"),
                              ({"XMRC_MALLOC": "0"}, "linux"), ({}, "darwin")):
        assert hostmem.tuned_environment(environ, platform, str(thp)) is None
    thp.write_text("always madvise [never]\n")
    assert hostmem.tuned_environment({}, "linux", str(thp)) is None
    assert hostmem.tuned_environment({}, "linux", str(tmp_path / "missing")) is None


def test_entry_point_reexecutes_once_with_the_tunable():
    from xmrc_jax import hostmem
    if hostmem.tuned_environment({}) is None:
        pytest.skip("no transparent huge pages here (or not Linux)")
    code = ("import os, sys; from xmrc_jax.hostmem import reexec_with_huge_pages; "
            "print('start', flush=True); reexec_with_huge_pages(); "
            "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])")
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "XMRC_MALLOC")}
    out = subprocess.run([sys.executable, "-c", code, "a", "b"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:3] == ["start", "start", "glibc.malloc.hugetlb=1 ['a', 'b']"]


def test_diagnostics_are_dev_only_runs_from_one_baseline_and_z(tmp_path):
    from xmrc_jax import replication
    from xmrc_jax.replication_report import write_diagnostics_report
    from xmrc_jax.reproduce import Runs
    c = _mrc_config()
    c.data.dev = [dict(path=os.path.join(ROOT, "data", "demo", "dev_en.json"), language="en",
                       name="squad", limit=8)]
    c.train.eval_every = 2
    root, results = tmp_path / "runs", tmp_path / "results"
    with pytest.raises(ValueError, match="'temperature3' in 'tau1\\+temperature3' is not"):
        replication.run_diagnostics(Runs(str(root), c), [0], ["tau10", "tau1+temperature3"])
    assert not root.exists()                              # every name is checked first
    assert replication.diag_changes("lr3e-5+tau1") == {"hl.learning_rate": 3e-5, "hl.tau": 1.0}
    names = ["tau10+alpha0.3", "no_overlap", "pretrained"]
    replication.run_diagnostics(Runs(str(root), c), [0], names)
    seed = root / "seed_0"
    assert not (seed / "base" / "evaluate").exists() and not (seed / "full" / "hl_aacl").exists()
    for name, want in (("tau10+alpha0.3", {"hl.tau": 10.0, "hl.alpha": 0.3}),
                       ("no_overlap", {"hl.negative": "no_overlap", "hl.alpha": 0.5}),
                       ("pretrained", {"hl.init": "pretrained", "hl.tau": 0.1})):
        run = seed / f"diag_{name}"
        assert (run / "mine").is_symlink() and not (run / "evaluate").exists()   # no test file
        art = json.load(open(run / "hl_aacl" / "artifact.json"))["config"]
        assert {k: art[k] for k in want} == want
    epochs = json.load(open(seed / "diag_pretrained" / "hl_aacl" / "artifact.json"))["config"]
    assert epochs["hl.epochs"] == c.train.epochs          # (d) as long as the baseline
    replication.collect_all(str(root), str(results), [0], diagnostics_only=True)
    assert not (results / "seed_0").exists()              # the committed runs stay untouched
    log = seed / "base" / "baseline" / "metrics.jsonl"
    for name in names:                                    # the baseline each one started from
        assert (results / "diagnostics" / "seed_0" / name / "baseline" /
                "metrics.jsonl").read_text() == log.read_text()
    replication.collect(str(seed / "base"), str(results / "seed_0" / "base"))  # committed here
    shutil.rmtree(root)                                   # the report needs the copies only
    text = write_diagnostics_report(str(results), [0])
    report = json.load(open(results / "diagnostics" / "report.json"))["seed_0"]
    assert set(report["runs"]) == set(names) | {"base"}
    assert {r["baseline"] for r in report["runs"].values()} == {"committed"}
    lines = [json.loads(x) for x in open(results / "diagnostics" / "seed_0" / "no_overlap" /
                                         "hl_aacl" / "metrics.jsonl")]
    dev = [d for d in lines if "dev_score" in d]
    no_overlap = report["runs"]["no_overlap"]
    assert [x[:2] for x in no_overlap["dev_curve"]] == [[d["step"], d["dev_score"]] for d in dev]
    best = max(dev, key=lambda d: d["dev_score"])
    assert no_overlap["best_dev_f1"] == best["dev_score"]
    assert no_overlap["best_dev_em"] == best["dev/squad_en/exact_match"]
    assert no_overlap["aacl_neg_overlap"] == 0.0                      # none overlaps gold
    assert report["dev_best"] == max(names, key=lambda n: report["runs"][n]["best_dev_f1"])
    assert "### From" not in text                          # one baseline: one table
    assert "| **tau10+alpha0.3** | baseline | 10 | 0.3 | not_gold |" in text
    assert "| **pretrained** | pretrained | 0.1 | 0.5 | not_gold |" in text
    assert "no test file" in text and "## Reading" not in text
    shutil.copytree(results / "diagnostics" / "seed_0" / "no_overlap",
                    results / "seed_0" / "control")
    (results / "diagnostics" / "reading.md").write_text("What the table says.\n")
    text = write_diagnostics_report(str(results), [0])
    assert text.endswith("## Reading\n\nWhat the table says.\n")
    rows = json.load(open(results / "diagnostics" / "report.json"))["seed_0"]["runs"]
    assert rows["control"]["reference"] and rows["no_overlap"]["minus_control"] == 0.0
    assert text.index("| control: (b) control") < text.index("| **no_overlap**")


def _fake_runs(monkeypatch, stop_after=None, loss=1.0):
    """``Runs.run`` replaced by one that links the shared stages, writes each stage's training
    log (``loss`` at step 1) and the run's changes, and records the run's name; a KeyboardInterrupt (a stop) once
    ``stop_after`` runs have ended. Returns the list of names."""
    from xmrc_jax import replication
    from xmrc_jax.reproduce import Runs
    done = []

    def fake_run(self, seed, name, stages, links=None, **changes):
        if len(done) == stop_after:
            raise KeyboardInterrupt
        wd = self.dir(seed, name)
        for stage, source in (links or {}).items():       # as Runs links shared stages
            os.makedirs(wd, exist_ok=True)
            os.symlink(os.path.join(self.dir(seed, source), stage), os.path.join(wd, stage))
        for stage in stages:
            os.makedirs(os.path.join(wd, stage), exist_ok=True)
            with open(os.path.join(wd, stage, "metrics.jsonl"), "w") as f:
                f.write(json.dumps({"step": 1, "loss": loss}) + "\n")
        with open(os.path.join(wd, "config.json"), "w") as f:
            json.dump({"changes": changes}, f)
        done.append(name)
        return wd

    monkeypatch.setattr(Runs, "run", fake_run)
    monkeypatch.setattr(replication, "load_config", lambda *a: _mrc_config())
    return done


def test_each_runs_results_are_copied_when_it_ends(tmp_path, monkeypatch):
    """A replication stopped part-way (a kill, the end of a session) leaves every finished
    run's results files in --results: ``main`` copies them as each run ends, not at the end."""
    from xmrc_jax import replication
    done = _fake_runs(monkeypatch, stop_after=3)          # base, full's mining, tau1: the stop
    results = tmp_path / "results"
    committed = results / "seed_0" / "base" / "baseline" / "metrics.jsonl"
    os.makedirs(committed.parent)                 # the baseline retrained here is this one
    committed.write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    with pytest.raises(KeyboardInterrupt):
        replication.main(["--config", "x.py", "--workdir", str(tmp_path / "runs"),
                          "--diagnostics", "tau1,tau10", "--results", str(results)])
    assert done == ["base", "full", "diag_tau1"]
    kept = results / "diagnostics" / "seed_0" / "tau1"
    assert json.load(open(kept / "config.json")) == {"changes": {
        "hl.ablation": "full", "hl.init": "baseline", "hl.tau": 1.0}}
    assert (kept / "hl_aacl" / "metrics.jsonl").exists()
    # the dev-only runs' baseline is not copied over the committed one
    assert [p for p in (results / "seed_0").rglob("*") if p.is_file()] == [committed]


def _dev_only_copy(folder, f1, ablation="full", tau=0.1, baseline_loss=None):
    """A run's copied results as ``collect`` leaves them: config.json, the second stage's log
    with one dev score, and (``baseline_loss``) the log of the baseline it started from."""
    os.makedirs(folder / "hl_aacl")
    json.dump({"hl": {"ablation": ablation, "init": "baseline", "tau": tau, "alpha": 0.5},
               "train": {"learning_rate": 1e-4}}, open(folder / "config.json", "w"))
    (folder / "hl_aacl" / "metrics.jsonl").write_text("".join(json.dumps(d) + "\n" for d in (
        {"step": 0, "tag": "hparams", "text": "..."}, {"step": 2, "loss": 2.0},
        {"step": 2, "dev_score": f1, "dev/squad_en/exact_match": f1 - 10})))
    if baseline_loss is not None:
        os.makedirs(folder / "baseline")
        (folder / "baseline" / "metrics.jsonl").write_text("".join(json.dumps(d) + "\n" for d in (
            {"step": 0, "tag": "hparams", "text": "..."},
            {"step": 20, "loss": baseline_loss, "steps_per_s": 0.1},
            {"step": 20, "dev_score": 50.0, "dev/squad_en/exact_match": 40.0})))


def test_a_baseline_trained_again_gets_its_own_full_and_control(tmp_path, monkeypatch, caplog):
    """The same baseline trained on another processor differs in the last bits from the first
    steps on, and so does every run from it: the driver then runs the dev-only ``full`` and
    ``control`` from it first, and the report reads each dev-only run against the control from
    its own baseline, never against the committed runs of the first one."""
    from xmrc_jax import replication
    from xmrc_jax.replication_report import (committed_baseline_difference,
                                             write_diagnostics_report)
    assert replication.diag_changes("control") == {"hl.ablation": "control"}
    assert replication.diag_changes("full") == {}
    with pytest.raises(ValueError, match="'control' in 'control\\+tau1' is not .*alone"):
        replication.diag_changes("control+tau1")

    results = tmp_path / "results"
    committed = results / "seed_0" / "base" / "baseline" / "metrics.jsonl"
    os.makedirs(committed.parent)
    committed.write_text(json.dumps({"step": 1, "loss": 1.0, "steps_per_s": 9.0}) + "\n")
    same = tmp_path / "same.jsonl"                        # another speed, the same numbers
    same.write_text(json.dumps({"step": 0, "tag": "hparams"}) + "\n"
                    + json.dumps({"step": 1, "loss": 1.0, "steps_per_s": 1.0}) + "\n")
    assert committed_baseline_difference(str(same), str(results), 0) is None
    done = _fake_runs(monkeypatch, loss=1.0000001)
    for report in ("write_report", "write_diagnostics_report"):   # (fake runs: read below)
        monkeypatch.setattr(f"xmrc_jax.replication_report.{report}", lambda *a: None)
    with caplog.at_level("WARNING", logger="xmrc_jax"):
        replication.main(["--config", "x.py", "--workdir", str(tmp_path / "runs"),
                          "--diagnostics", "tau1", "--results", str(results)])
    assert done == ["base", "full", "diag_full", "diag_control", "diag_tau1"]
    assert "step 1: loss 1.0000001 against 1.0 (committed)" in caplog.text
    control = json.load(open(results / "diagnostics" / "seed_0" / "control" / "config.json"))
    assert control == {"changes": {"hl.ablation": "control", "hl.init": "baseline"}}
    for name in ("full", "control", "tau1"):                  # each keeps its baseline's log
        assert (results / "diagnostics" / "seed_0" / name / "baseline" / "metrics.jsonl").exists()

    # The report, from copies: the committed (b) and (c), a dev-only run copied before the
    # baseline logs were (trained beside them), and three runs from a baseline trained again.
    shutil.rmtree(results / "diagnostics")
    committed.write_text("".join(json.dumps(d) + "\n" for d in (
        {"step": 20, "loss": 1.5, "steps_per_s": 9.0},
        {"step": 20, "dev_score": 50.0, "dev/squad_en/exact_match": 40.0})))
    json.dump({"hl": {"ablation": "full", "init": "baseline"}, "train": {"learning_rate": 1e-4}},
              open(results / "seed_0" / "base" / "config.json", "w"))
    diag = results / "diagnostics" / "seed_0"
    _dev_only_copy(results / "seed_0" / "control", 70.0, ablation="control", tau=None)
    _dev_only_copy(results / "seed_0" / "full", 67.0)
    _dev_only_copy(diag / "lr3e-5", 66.0)
    _dev_only_copy(diag / "full", 60.0, baseline_loss=1.5000001)
    _dev_only_copy(diag / "control", 62.0, ablation="control", tau=None, baseline_loss=1.5000001)
    _dev_only_copy(diag / "tau1", 66.5, tau=1.0, baseline_loss=1.5000001)
    text = write_diagnostics_report(str(results), [0])
    report = json.load(open(results / "diagnostics" / "report.json"))["seed_0"]
    rows = report["runs"]
    again = {k.split("@")[1] for k in rows if "@" in k}
    assert len(again) == 1
    group = again.pop()
    assert set(rows) == {"base", "control", "full", "lr3e-5", f"base@{group}", f"full@{group}",
                         f"control@{group}", f"tau1@{group}"}
    assert rows["lr3e-5"]["baseline"] == "committed"
    assert rows["lr3e-5"]["minus_control"] == pytest.approx(-4.0)      # committed control
    assert rows[f"tau1@{group}"]["minus_control"] == pytest.approx(4.5)  # its own control
    assert rows[f"full@{group}"]["minus_control"] == pytest.approx(-2.0)
    assert rows[f"base@{group}"]["dev_curve"] == [[20, 50.0, 40.0]]
    # by dev F1 the committed full (67.0) would win; against its own control tau1 does
    assert report["dev_best"] == "tau1"
    assert "### From the committed baseline" in text
    assert f"### From baseline `{group}`, trained again (its log differs from the committed " \
           "one at step 20: loss 1.5000001 against 1.5 (committed))" in text
    assert text.index(f"| base@{group}:") < text.index(f"| **tau1@{group}** |")


def test_a_seed_is_not_mixed_from_two_baselines(tmp_path, monkeypatch, caplog):
    """Test runs added to a seed whose committed runs came from another baseline (trained
    again elsewhere) would be paired with them in the report: refused by name before any run
    but the baseline, unless the seed's committed runs are all run again."""
    from xmrc_jax import replication
    results = tmp_path / "results"
    for name in ("base", "full", "control"):
        os.makedirs(results / "seed_0" / name / "evaluate")
        (results / "seed_0" / name / "evaluate" / "results.json").write_text("{}")
    committed = results / "seed_0" / "base" / "baseline" / "metrics.jsonl"
    os.makedirs(committed.parent)
    committed.write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    done = _fake_runs(monkeypatch, loss=1.0000001)
    for report in ("write_report", "write_diagnostics_report"):
        monkeypatch.setattr(f"xmrc_jax.replication_report.{report}", lambda *a: None)
    argv = ["--config", "x.py", "--workdir", str(tmp_path / "runs"), "--results", str(results)]
    with pytest.raises(SystemExit, match=r"seed 0: this workdir's baseline is not the one of "
                       r"the committed runs .*step 1: loss 1.0000001 against 1.0.*\['control'\] "
                       r"would be paired"):
        replication.main(argv + ["--runs", "base,full,no_aacl"])
    assert done == ["base"]                                # the baseline alone, not copied
    assert committed.read_text() == json.dumps({"step": 1, "loss": 1.0}) + "\n"
    with caplog.at_level("WARNING", logger="xmrc_jax"):
        replication.main(argv + ["--runs", "base,full,control,no_aacl"])
    assert done[1:] == ["base", "base", "full", "control", "no_aacl"]
    assert "committed runs ['base', 'full', 'control'] are replaced" in caplog.text
    assert "1.0000001" in committed.read_text()            # the seed is this workdir's now

"""Train step on meshes of fake CPU devices, resume after a kill, NaN guard, config errors."""

import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xmrc_jax.data import TrainIterator
from xmrc_jax.models import EncoderConfig, build_model
from xmrc_jax import mesh as sh
from xmrc_jax.tasks import span_qa
from xmrc_jax.train import loop, state as st
from xmrc_jax.train.trainer import build_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = EncoderConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=40, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)


def _batch(n=8, L=16, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 50, size=(n, L)).astype(np.int32)
    mask = np.ones((n, L), np.int32)
    mask[:, 12:] = 0
    ids[:, 12:] = 1
    ctx = np.zeros((n, L), bool)
    ctx[:, 5:11] = True
    q = np.zeros((n, L), bool)
    q[:, 1:4] = True
    s = rng.integers(5, 9, size=n).astype(np.int32)
    e = (s + rng.integers(0, 2, size=n)).astype(np.int32)
    cs = np.tile(np.arange(5, 9, dtype=np.int32), (n, 1))
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
                context_mask=ctx, question_mask=q, start_positions=s, end_positions=e,
                answer_in_window=np.ones(n, bool), cand_starts=cs, cand_ends=cs + 1,
                cand_valid=np.ones((n, 4), bool))


def _objective(module, objective):
    return (span_qa.mrc_objective(module) if objective == "mrc" else
            span_qa.hl_aacl_objective(module, "weighted_learned", 0.5, 0.1, 5, 3))


def _build(mesh, objective="mrc", accum=1, module=None, obj=None):
    module = module or build_model(CFG)
    tx, _ = st.make_optimizer(1e-3, 10)
    extra = {"hl": {"type_logits": jnp.zeros(3)}} if objective != "mrc" else None
    state, _, fn = build_step(module, tx, mesh, obj or _objective(module, objective), _batch(),
                              rng=jax.random.PRNGKey(0), extra_params=extra,
                              grad_accum_steps=accum)
    return state, fn


def _losses(mesh_sizes, objective="mrc", steps=2, accum=1):
    mesh = sh.make_mesh(mesh_sizes)
    state, fn = _build(mesh, objective, accum)
    out = []
    for i in range(steps):
        state, m = fn(state, sh.put_batch(_batch(seed=i), mesh))
        out.append(float(m["loss"]))
    return out, jax.device_get(state.params)


@pytest.mark.parametrize("objective", ["mrc", "hl_aacl"])
def test_same_loss_on_one_device_and_meshes(objective):
    if jax.device_count() < 8:
        pytest.skip("needs 8 (fake) devices")
    one = sh.make_mesh({"data": 1}, jax.devices()[:1])
    state, fn = _build(one, objective)
    ref = []
    for i in range(2):
        state, m = fn(state, sh.put_batch(_batch(seed=i), one))
        ref.append(float(m["loss"]))
    for sizes in ({"data": 8, "fsdp": 1, "tensor": 1}, {"data": 4, "fsdp": 2, "tensor": 1},
                  {"data": 2, "fsdp": 2, "tensor": 2}):
        got, _ = _losses(sizes, objective)
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0, err_msg=str(sizes))


def test_gradient_accumulation_matches_full_batch():
    a, pa = _losses({"data": 1, "fsdp": 1, "tensor": 1} if jax.device_count() == 1 else {"data": -1}, accum=1)
    b, pb = _losses({"data": -1}, accum=2)
    np.testing.assert_allclose(a, b, atol=1e-5)
    for x, y in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb)):
        np.testing.assert_allclose(x, y, atol=1e-5)


@pytest.mark.parametrize("objective,accum,sizes", [
    ("mrc", 1, {"data": 1}), ("hl_aacl", 1, {"data": 1}), ("mrc", 2, {"data": 1}),
    ("hl_aacl", 2, {"data": 2, "fsdp": 2, "tensor": 2})])
def test_a_batch_cut_to_its_longest_window_trains_as_the_padded_one(objective, accum, sizes):
    """What length-grouped batches rely on: the columns past every window's end change nothing
    (loss, gradient norm and the updated parameters), with AA-CL's in-batch negatives, gradient
    accumulation and a sharded mesh; the step compiles once per shape."""
    if jax.device_count() < int(np.prod(list(sizes.values()))):
        pytest.skip("needs 8 (fake) devices")
    mesh = sh.make_mesh(sizes, jax.devices()[:int(np.prod(list(sizes.values())))])
    full = _batch(seed=3)                          # windows end at 12 of 16 positions
    cut = {k: (v[:, :12] if k in span_qa.SEQUENCE_KEYS else v) for k, v in full.items()}
    results = []
    for batch in (full, cut):
        state, fn = _build(mesh, objective, accum)
        state, m = fn(state, sh.put_batch(batch, mesh))
        results.append((m, jax.device_get(state.params), fn))
    (m_full, p_full, _), (m_cut, p_cut, fn) = results
    for key in ("loss", "grad_norm"):
        np.testing.assert_allclose(float(m_cut[key]), float(m_full[key]), rtol=1e-5, err_msg=key)
    for a, b in zip(jax.tree_util.tree_leaves(p_full), jax.tree_util.tree_leaves(p_cut)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert fn.compilations == 2                     # the example batch's shape and the cut one


def test_mesh_that_does_not_fit_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        sh.mesh_shape({"data": -1, "fsdp": 3, "tensor": 1}, 8)
    with pytest.raises(ValueError, match="needs 16 devices"):
        sh.mesh_shape({"data": 4, "fsdp": 4, "tensor": 1}, 8)


def test_precision_policy():
    assert st.choose_precision("auto") == "fp32"          # CPU
    assert st.choose_precision("bf16") == "bf16"

    class Gpu:
        platform, compute_capability = "gpu", "7.0"
    assert st.choose_precision("auto", "fp16", [Gpu()]) == "fp16"
    Gpu.compute_capability = "8.0"
    assert st.choose_precision("auto", "fp16", [Gpu()]) == "bf16"
    with pytest.raises(ValueError):
        st.choose_precision("fp8")


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    mesh = sh.make_mesh({"data": -1})
    module = build_model(CFG)

    def objective(params, batch, rng):
        loss = span_qa.mrc_objective(module)(params, batch, rng)[0]
        return jnp.where(batch["start_positions"][0] < 0, jnp.nan, loss), {}
    state, fn = _build(mesh, module=module, obj=objective)
    arrays = _batch(n=64)
    arrays["start_positions"][40:] = -1               # batches from step 6 on give NaN
    arrays = {k: v for k, v in arrays.items()}
    it = TrainIterator(arrays, 8, seed=0)
    it._permutation = lambda: np.arange(64)            # in order, so the NaN step is known
    with pytest.raises(FloatingPointError, match="last good checkpoint is step 4"):
        loop.train(loop.LoopConfig("t", str(tmp_path), 8, checkpoint_every=2), state, fn, it,
                   mesh, [loop.NanGuard()])


def test_nan_gradient_with_a_finite_loss_is_caught_before_saving(tmp_path):
    """The loss stays finite but its gradient is NaN from step 3 on: the exploded parameters
    are never saved and the newest checkpoint restores to finite parameters."""
    mesh = sh.make_mesh({"data": -1})
    module = build_model(CFG)

    def objective(params, batch, rng):
        loss = span_qa.mrc_objective(module)(params, batch, rng)[0]
        w = params["model"]["qa_outputs"]["bias"][0]
        flag = 1.0 - batch["answer_in_window"][0].astype(jnp.float32)   # unused by L_mrc
        # value 0 or 1; gradient 0 * 1/(2 sqrt(1)) = 0, or 0 * inf = NaN when flagged
        return loss + jnp.sqrt(jnp.abs(w - jax.lax.stop_gradient(w)) + 1.0 - flag), {}
    state, fn = _build(mesh, module=module, obj=objective)
    arrays = _batch(n=64)
    arrays["answer_in_window"][16:] = False           # batches from step 3 on
    it = TrainIterator(arrays, 8, seed=0)
    it._permutation = lambda: np.arange(64)
    with pytest.raises(FloatingPointError, match="parameters are not finite at step 3.*"
                                                 "last good checkpoint is step 2"):
        loop.train(loop.LoopConfig("t", str(tmp_path), 8, checkpoint_every=1), state, fn, it,
                   mesh, [loop.NanGuard()])
    fresh, _ = _build(mesh, module=module, obj=objective)
    mngr = loop.checkpoint_manager(str(tmp_path), 2)
    restored, meta, mngr = loop.restore_latest(mngr, fresh, str(tmp_path))
    mngr.close()
    assert meta["step"] == 2
    assert all(np.isfinite(np.asarray(x)).all()
               for x in jax.tree_util.tree_leaves(jax.device_get(restored.params)))


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, caplog):
    import glob
    import logging
    mesh = sh.make_mesh({"data": -1})
    arrays = _batch(n=64)

    def run(folder, total):
        state, fn = _build(mesh)
        return loop.train(loop.LoopConfig("t", str(folder), total, checkpoint_every=2), state,
                          fn, TrainIterator(arrays, 8, seed=0), mesh, [loop.NanGuard()])
    ref = jax.device_get(run(tmp_path / "ref", 8).params)
    run(tmp_path / "run", 6)                        # checkpoints at steps 4 and 6 are kept
    files = sorted(f for f in glob.glob(str(tmp_path / "run" / "6" / "**" / "*"), recursive=True)
                   if os.path.isfile(f) and os.path.getsize(f) > 100 and "state" in f)
    victim = files[0]
    if damage == "truncate":
        with open(victim, "r+b") as f:
            f.truncate(os.path.getsize(victim) // 2)
    else:
        os.remove(victim)
    with caplog.at_level(logging.WARNING, logger="xmrc_jax"):
        got = jax.device_get(run(tmp_path / "run", 8).params)
    assert "checkpoint step 6" in caplog.text and "does not restore" in caplog.text
    assert "resumed from checkpoint step 4" in caplog.text
    assert (tmp_path / "run" / "corrupt_6").is_dir()                 # moved aside, not deleted
    for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(got)):
        np.testing.assert_array_equal(a, b)


def _demo_cmd(workdir, *extra):
    return [sys.executable, "-m", "xmrc_jax.main", "--config=configs/demo.py", f"--workdir={workdir}",
            "--config.stages=('baseline',)", "--config.model.arch.hidden_size=16",
            "--config.model.arch.intermediate_size=32", "--config.model.arch.num_hidden_layers=1",
            "--config.data.max_seq_length=64", "--config.data.doc_stride=32",
            "--config.data.max_query_length=16", "--config.train.batch_size=8",
            "--config.data.limit_per_file=40", "--config.train.max_steps=12",
            "--config.train.checkpoint_every=1", "--config.train.log_every=1",
            "--config.train.group_by_length=32", *extra]    # batches of length 32 and 64


def _final_params(workdir):
    from xmrc_jax.models import read_state_dict
    return read_state_dict(os.path.join(workdir, "baseline", "hf"))


def _truncate_largest_file_of_newest_checkpoint(folder) -> str:
    import glob
    newest = max((d for d in os.listdir(folder) if d.isdigit()), key=int)
    files = [f for f in glob.glob(os.path.join(folder, newest, "**", "*"), recursive=True)
             if os.path.isfile(f)]
    victim = max(files, key=os.path.getsize)
    with open(victim, "r+b") as f:
        f.truncate(1000)
    return newest


@pytest.mark.parametrize("how", ["kill", "term", "kill_then_corrupt"])
def test_killed_run_resumes_to_the_same_parameters(tmp_path, how):
    """Killed (SIGKILL), stopped (SIGTERM), or killed and then the newest checkpoint's largest
    file truncated (the issue's reproduction): the rerun ends with the uninterrupted run's
    parameters. A corrupt checkpoint costs the console two warnings beyond the data's own (the
    step that does not restore, the step resumed from): no traceback (the library's go to
    log.txt), and no more lines than the uninterrupted run printed."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"
    out_ref = subprocess.run(_demo_cmd(ref), cwd=ROOT, env=env, check=True, capture_output=True,
                             text=True)
    run = tmp_path / "run"
    p = subprocess.Popen(_demo_cmd(run), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:                      # wait until training is under way
        if "baseline step 5/" in line:
            p.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
            break
    rest = p.stdout.read()
    p.wait(timeout=120)
    if how == "term":
        assert p.returncode == 0 and "SIGTERM at step" in rest
    assert not (run / "baseline" / "hf").exists()
    # the curve up to the last checkpoint survives the kill (flushed at every checkpoint)
    steps = [json.loads(line)["step"] for line in open(run / "baseline" / "metrics.jsonl")]
    assert len(steps) >= 4 and steps == sorted(steps)
    if how == "kill_then_corrupt":
        bad = _truncate_largest_file_of_newest_checkpoint(run / "baseline" / "checkpoints")
    again = subprocess.run(_demo_cmd(run), cwd=ROOT, env=env, capture_output=True, text=True)
    said = again.stdout + again.stderr
    assert again.returncode == 0, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    if how == "kill_then_corrupt":
        def warnings(text):                     # absl's W / E / F lines, without the prefix
            return [ln.split("] ", 1)[-1] for ln in text.splitlines()
                    if ln[:1] in "WEF" and ln[1:5].isdigit()]
        data_warnings = warnings(out_ref.stdout + out_ref.stderr)     # the data's own
        warnings = [w for w in warnings(said) if w not in data_warnings]
        assert len(warnings) == 2, warnings
        assert f"checkpoint step {bad} " in warnings[0] and "does not restore" in warnings[0]
        assert f"moved to {run / 'baseline' / 'checkpoints' / ('corrupt_' + bad)}" in warnings[1]
        ref_lines = len((out_ref.stdout + out_ref.stderr).splitlines())
        assert len(said.splitlines()) <= ref_lines, (len(said.splitlines()), ref_lines)
        assert "does not restore" in (run / "log.txt").read_text()
    a, b = _final_params(ref), _final_params(run)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_unfinished_saves_of_a_killed_run_are_removed_before_resuming(tmp_path, caplog):
    import logging
    mesh = sh.make_mesh({"data": -1})
    state, fn = _build(mesh)
    loop.train(loop.LoopConfig("t", str(tmp_path), 2, checkpoint_every=2), state, fn,
               TrainIterator(_batch(n=64), 8, seed=0), mesh)
    unfinished = tmp_path / "4.orbax-checkpoint-tmp"
    (unfinished / "state").mkdir(parents=True)
    mngr = loop.checkpoint_manager(str(tmp_path), 2)
    with caplog.at_level(logging.INFO, logger="xmrc_jax"):
        _, meta, mngr = loop.restore_latest(mngr, state, str(tmp_path))
    mngr.close()
    assert meta["step"] == 2 and not unfinished.exists()
    assert "removed 1 unfinished save(s) of an earlier run: 4.orbax-checkpoint-tmp" in caplog.text


def test_zero_means_only_at_the_end_for_checkpoints_and_logs(tmp_path, caplog):
    """checkpoint_every / log_every 0 (as eval_every 0): no periodic saves or log lines, one
    of each at the end, the same parameters as a run that saves every 2 steps."""
    import logging
    mesh = sh.make_mesh({"data": -1})
    arrays = _batch(n=64)

    def run(folder, every):
        state, fn = _build(mesh)
        return loop.train(loop.LoopConfig("t", str(folder), 6, checkpoint_every=every), state,
                          fn, TrainIterator(arrays, 8, seed=0), mesh,
                          [loop.NanGuard(), loop.LogMetrics(every)])
    with caplog.at_level(logging.INFO, logger="xmrc_jax"):
        end = jax.device_get(run(tmp_path / "end", 0).params)
    assert sorted(p.name for p in (tmp_path / "end").iterdir() if p.name.isdigit()) == ["6"]
    assert [r.getMessage().split("  ")[0] for r in caplog.records
            if " step " in r.getMessage() and "/6" in r.getMessage()] == ["t step 6/6"]
    every2 = jax.device_get(run(tmp_path / "every2", 2).params)
    for a, b in zip(jax.tree_util.tree_leaves(end), jax.tree_util.tree_leaves(every2)):
        np.testing.assert_array_equal(a, b)
    from configs import demo
    from xmrc_jax.stages import validate
    c = demo.get_config()
    c.train.checkpoint_every = -1                     # refused by name before any work
    with pytest.raises(ValueError, match=r"config.train.checkpoint_every: -1 must be >= 0"):
        validate(c)


def test_unknown_config_key_is_named(tmp_path):
    out = subprocess.run([sys.executable, "-m", "xmrc_jax.main", "--config=configs/demo.py",
                          f"--workdir={tmp_path}", "--config.no_such_key=1"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "no_such_key" in out.stderr


class _FakeDev:
    """Dev scores in a fixed order; records which steps were kept as best."""

    def __init__(self, scores):
        self.scores, self.kept = list(scores), []

    def score(self, state):
        return self.scores.pop(0)

    def save_best(self, state, step, score):
        self.kept.append((step, score))


def test_best_by_dev_score_is_kept_across_resume(tmp_path):
    mesh = sh.make_mesh({"data": -1})
    arrays = _batch(n=64)
    dev = _FakeDev([1.0, 3.0])
    state, fn = _build(mesh)
    loop.train(loop.LoopConfig("t", str(tmp_path), 4, checkpoint_every=2), state, fn,
               TrainIterator(arrays, 8, seed=0), mesh, [loop.DevEvaluation(dev, 2)])
    assert dev.kept == [(2, 1.0), (4, 3.0)]
    # resume to step 8: 2.0 at step 6 is not an improvement on the restored best (3.0)
    dev = _FakeDev([2.0, 4.0])
    state, fn = _build(mesh)
    loop.train(loop.LoopConfig("t", str(tmp_path), 8, checkpoint_every=2), state, fn,
               TrainIterator(arrays, 8, seed=0), mesh, [loop.DevEvaluation(dev, 2)])
    assert dev.kept == [(8, 4.0)]


def test_dev_f1_evaluator_exports_the_best_model(tmp_path):
    sys.path.insert(0, ROOT)
    from configs import demo
    from xmrc_jax import runtime as rt
    from xmrc_jax.data import build_features, load_specs
    from xmrc_jax.eval import span_qa as span_eval
    from xmrc_jax.eval.evaluator import Evaluator
    from xmrc_jax.stages.artifacts import Workdir

    c = demo.get_config()
    c.model.arch.update(hidden_size=16, intermediate_size=32, num_hidden_layers=1)
    c.data.max_seq_length, c.data.doc_stride, c.data.max_query_length = 64, 32, 16
    c.data.dev = [dict(path=os.path.join(ROOT, "data", "demo", "mlqa.es.json"), language="es",
                       name="mlqa", limit=20)]
    runtime = rt.build(c, str(tmp_path / "cache"))
    module = runtime.module("span")
    files = [(fs, ex, build_features(ex, runtime.tokenizer, 64, 32, 16))
             for fs, ex, _ in load_specs(c.data.dev)]
    assert files[0][0].metric == "mlqa"               # from the dataset registry
    wd = Workdir(str(tmp_path))
    dev = Evaluator(span_eval.dev_f1(module, files, runtime.mesh, batch_size=8, n_best=5,
                                     max_answer_len=10),
                    lambda params, meta: wd.save_model(wd.best("baseline"), module, params,
                                                       runtime.tokenizer, meta), "dev_f1")
    tx, _ = st.make_optimizer(1e-3, 10)
    state, _ = st.create_state(module, tx, runtime.mesh, jax.random.PRNGKey(0))
    score = dev.score(state)
    assert 0.0 <= score <= 100.0
    dev.save_best(state, 7, score)
    best = json.load(open(tmp_path / "baseline" / "best" / "best.json"))
    assert best == {"step": 7, "dev_f1": score}
    assert (tmp_path / "baseline" / "best" / "hf" / "model.safetensors").exists()


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_loopback_match_one_process(tmp_path):
    """launch/local.sh -n 2: two jax.distributed CPU processes (one device each) train to the
    same parameters as one process with two devices; only process 0 writes the export."""
    args = ["--config.train.max_steps=6", "--config.train.checkpoint_every=3"]
    env = {**os.environ, "XMRC_PORT": str(_free_port())}
    two = tmp_path / "two"
    out = subprocess.run(["bash", "launch/local.sh", "-n", "2", "--", *_demo_cmd(two, *args)[3:]],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "process 0 of 2" in out.stderr and "process 1 of 2" in (two / "launch-1.log").read_text()
    one = tmp_path / "one"
    env1 = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    subprocess.run(_demo_cmd(one, *args), cwd=ROOT, env=env1, check=True, capture_output=True)
    a, b = _final_params(one), _final_params(two)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5, err_msg=k)


def test_missing_pretrained_weights_is_one_clear_sentence(tmp_path):
    out = subprocess.run([sys.executable, "-m", "xmrc_jax.main", "--config=configs/mlqa.py",
                          f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert last.startswith("xmrc_jax: config.model.name 'xlm-roberta-base'") and "--config.model.name=DIR" in last


def test_remat_same_gradients_and_less_activation_memory():
    cfg = EncoderConfig(vocab_size=50, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=256, max_position_embeddings=130,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50, size=(8, 128)).astype(np.int32)
    batch = dict(input_ids=ids, attention_mask=np.ones_like(ids), token_type_ids=np.zeros_like(ids),
                 start_positions=np.full(8, 5, np.int32), end_positions=np.full(8, 7, np.int32))
    params = build_model(cfg).init(jax.random.PRNGKey(0), ids[:1, :8], np.ones((1, 8), np.int32))["params"]
    out = []
    for remat in (False, True):
        obj = span_qa.mrc_objective(build_model(cfg, remat=remat))
        g = jax.jit(jax.grad(lambda p, b: obj({"model": p}, b, jax.random.PRNGKey(0))[0]))
        temp = g.lower(params, batch).compile().memory_analysis().temp_size_in_bytes
        out.append((temp, g(params, batch)))
    for a, b in zip(jax.tree_util.tree_leaves(out[0][1]), jax.tree_util.tree_leaves(out[1][1])):
        np.testing.assert_array_equal(a, b)
    assert out[1][0] * 2 <= out[0][0], (out[0][0], out[1][0])
    # with dropout the remat path draws its own masks and still trains
    drop = build_model(EncoderConfig(**{**cfg.to_dict(), "hidden_dropout_prob": 0.1,
                                        "attention_probs_dropout_prob": 0.1}), remat=True)
    g = jax.grad(lambda p: span_qa.mrc_objective(drop)({"model": p}, batch, jax.random.PRNGKey(1))[0])(params)
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(g))


def test_extra_parameter_groups_get_their_own_learning_rate():
    params = {"model": {"w": jnp.ones(3)}, "hl": {"type_logits": jnp.zeros(3)}}
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    for rates, ratio in ((None, 1.0), ({"hl": 3e-3}, 100.0)):
        tx, _ = st.make_optimizer(3e-5, 10, warmup_ratio=0.0, weight_decay=0.0,
                                  max_grad_norm=0.0, learning_rates=rates)
        _, opt = tx.update(grads, tx.init(params), params)      # step 0: warm-up starts at 0
        updates, _ = tx.update(grads, opt, params)
        got = float(jnp.abs(updates["hl"]["type_logits"][0]) / jnp.abs(updates["model"]["w"][0]))
        assert got == pytest.approx(ratio, rel=1e-4)          # Adam's first step: lr * sign


@pytest.mark.parametrize("args,message", [
    (["--config.stages=(baseline,nope)"], "unknown stage 'nope'"),
    (["--config.stages=(hl_aacl,)"], "stage hl_aacl needs 'baseline'"),
    (["--config.hl.variant=mmll"], "config.hl.variant: 'mmll' is not one of"),
    (["--config.mesh.fsdp=3"], "does not fit"),
    (["--config.train.eval_evry=3"], "config.train has no key 'eval_evry'; did you mean eval_every"),
    (["--config.trian.epochs=3"], "--config.trian.epochs: the config has no key 'trian'; did you mean train?"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    cmd = [sys.executable, "-m", "xmrc_jax.main", "--config=configs/demo.py",
           f"--workdir={tmp_path / 'wd'}", *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert last.startswith("xmrc_jax: ") and message in last, last
    verbose = subprocess.run(cmd + ["--verbose"], cwd=ROOT, capture_output=True, text=True)
    assert "Traceback" in verbose.stderr


def test_unwritable_workdir_is_named_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = subprocess.run([sys.executable, "-m", "xmrc_jax.main", "--config=configs/demo.py",
                          f"--workdir={blocker / 'wd'}"], cwd=ROOT, capture_output=True, text=True)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode != 0 and f"--workdir {blocker / 'wd'}: cannot be created" in last


def test_a_run_logs_to_its_workdir_and_tensorboard_gets_what_people_look_for(tmp_path):
    wd = tmp_path / "wd"
    cmd = [sys.executable, "-m", "xmrc_jax.main", "--config=configs/demo.py", f"--workdir={wd}",
           "--config.stages=(baseline,)", "--config.train.max_steps=3", "--config.train.log_every=1",
           "--config.train.eval_every=2", "--config.model.arch.num_hidden_layers=1",
           "--config.model.arch.hidden_size=16", "--config.model.arch.intermediate_size=32",
           "--config.model.arch.num_attention_heads=2", "--config.data.max_seq_length=64",
           "--config.data.doc_stride=32", "--config.data.max_query_length=16",
           "--config.data.limit_per_file=32"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    log_text = (wd / "log.txt").read_text()
    assert "=== stage baseline" in log_text and "baseline step 3/3" in log_text
    rows = [json.loads(x) for x in open(wd / "baseline" / "metrics.jsonl")]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    # warm-up then decay: the rate each step used (peak 1e-3 after round(0.1 * 3) = 0 -> 1 step)
    assert steps[0]["learning_rate"] == 0.0 and steps[1]["learning_rate"] == pytest.approx(1e-3)
    assert steps[2]["learning_rate"] == pytest.approx(5e-4)
    dev = [r for r in rows if "dev_score" in r]
    assert [r["step"] for r in dev] == [2, 3]
    assert dev[0]["dev_score"] == dev[0]["dev/squad_en/f1"] and "dev/squad_en/exact_match" in dev[0]
    hparams = next(r["text"] for r in rows if r.get("tag") == "hparams")
    assert "| train.learning_rate | 0.001 |" in hparams and "| total_steps | 3 |" in hparams
    assert "| data.max_seq_length | 64 |" in hparams

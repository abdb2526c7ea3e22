"""One call on a lent accelerator: what CPU tests cannot show, measured and written as JSON.

    bash benchmarks/device.sh                      # on the lent machine (the device tool)
    python benchmarks/device.py --out DIR [--dry]  # --dry: tiny sizes, on whatever JAX has

Sections, in order of importance, each recorded even when a later one fails; the JSON is
rewritten after every section, so a run stopped at its limit keeps what it measured:

1. ``environment``: devices, versions, the precision ``model.precision=auto`` picks there;
2. ``matmul_peak``: a bf16 (and fp32) matmul's FLOP/s through XLA, measured in this run;
3. ``train_step``: the XLM-R base shape (12 x 768, vocabulary 250,002, random initialisation),
   batch 32 x 384, bf16, L_mrc, AdamW: examples/s and MFU against the bf16 peak of (2), beside
   ``transformers``' ``XLMRobertaForQuestionAnswering`` under bf16 autocast with
   ``torch.optim.AdamW`` on the same GPU, same batch;
4. ``tests``: the tests of the ``xla`` kernels, the precision policies, the losses and span
   operations, run on the accelerator (fp32 matmuls at highest precision: they check
   numbers, not speed);
5. ``fp16``: the V100 path, fp16 compute with dynamic loss scaling: losses over steps on one
   batch must stay finite and fall;
6. ``attention``: the train step without attention dropout with cuDNN flash attention against
   XLA's, and their outputs' largest difference;
7. ``remat``: temporary memory of the step with and without remat (``memory_analysis()``).

``--dry`` runs every section at tiny sizes in a few seconds (CI runs it on the CPU:
tests/test_benchmarks.py); there the tests section only collects the selection.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

# What runs on the accelerator: the xla kernels (parity with the CPU kernels and PyTorch),
# bf16 against fp32, the losses and span ops, the step's accumulation and batch cutting.
# Left out: tests that assert this is a CPU (kernels / precision "auto"), multi-device meshes.
GPU_TESTS = ["tests/test_kernels.py", "tests/test_hf_io.py", "tests/test_losses.py",
             "tests/test_spans.py", "tests/test_train.py"]
GPU_SELECTION = (
    "not auto_picks and (same_parameters or dropout_while_training or match_pytorch or bf16 "
    "or round_trip or hard_learning or mrc_loss or aacl or mccrolin or info_nce or "
    "false_negatives or top_k_spans or span_log_prob or pooling or cut_to_its or "
    "gradient_accumulation)")

SIZES = {
    "full": dict(layers=12, hidden=768, heads=12, intermediate=3072, vocab=250002, batch=32,
                 seq=384, peak_n=8192, repeat=10, fp16_steps=30),
    "dry": dict(layers=2, hidden=64, heads=4, intermediate=128, vocab=1000, batch=4, seq=128,
                peak_n=256, repeat=2, fp16_steps=6),
}


class Report:
    """The results, written to ``path`` after every section."""

    def __init__(self, path, budget_s):
        self.path, self.data, self.t0, self.budget = path, {}, time.time(), budget_s

    def left(self) -> float:
        return self.budget - (time.time() - self.t0)

    def section(self, name, fn, needs_s=0.0):
        if self.left() < needs_s:
            self.data[name] = {"skipped": f"time budget: {self.left():.0f} s left, needs "
                                          f"about {needs_s:.0f} s"}
        else:
            t = time.time()
            try:
                self.data[name] = fn()
            except Exception as e:      # noqa: BLE001 (a failed section is a result too)
                self.data[name] = {"error": f"{type(e).__name__}: {e}"[:2000],
                                   "traceback": traceback.format_exc()[-4000:]}
            self.data[name + "_seconds"] = round(time.time() - t, 1)
        self.write()
        print(f"[device] {name}: {json.dumps(self.data[name])[:600]}", flush=True)

    def write(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "w") as f:
            json.dump(self.data, f, indent=2)


def environment():
    import jax
    from xmrc_jax.train import state as st
    d = jax.devices()[0]
    out = dict(python=platform.python_version(), jax=jax.__version__, backend=jax.default_backend(),
               devices=[str(x) for x in jax.devices()], device_kind=d.device_kind,
               compute_capability=getattr(d, "compute_capability", None),
               precision_auto=st.choose_precision("auto"))
    for name in ("flax", "optax", "orbax.checkpoint", "torch", "transformers"):
        try:
            out[name] = __import__(name, fromlist=["__version__"]).__version__
        except Exception as e:      # noqa: BLE001
            out[name] = f"not available ({type(e).__name__})"
    return out


def matmul_peak(z):
    from benchmarks.common import matmul_peak_flops
    return {f"{dt}_tflops": matmul_peak_flops(n=z["peak_n"], dtype=dt) / 1e12
            for dt in ("bfloat16", "float32")}


def _cfg(z, **over):
    from xmrc_jax.models import EncoderConfig
    return EncoderConfig(vocab_size=z["vocab"], hidden_size=z["hidden"],
                         num_hidden_layers=z["layers"], num_attention_heads=z["heads"],
                         intermediate_size=z["intermediate"],
                         max_position_embeddings=z["seq"] + 2, **over)


def train_step(z, peak_tflops, torch_device):
    from benchmarks.common import timeit
    from benchmarks.train_step import jax_step, make_batch, model_flops, torch_step
    from xmrc_jax.tasks import span_qa
    cfg = _cfg(z)
    batch = make_batch(z["batch"], z["seq"], z["vocab"])
    flops = model_flops(cfg, z["batch"], z["seq"])
    run, mem, xla_flops = jax_step(cfg, batch, span_qa.mrc_objective, precision="bf16")
    t = timeit(run, repeat=z["repeat"], warmup=2)
    del run
    out = dict(shape=f"{z['layers']} x {z['hidden']}, vocab {z['vocab']}, batch {z['batch']} x "
                     f"{z['seq']}", model_tflop_per_step=flops / 1e12,
               xla_tflop_per_step=xla_flops / 1e12,
               jax_bf16=dict(step_s=t, examples_per_s=z["batch"] / t,
                             mfu=flops / t / (peak_tflops * 1e12) if peak_tflops else None,
                             temp_gib=mem.temp_size_in_bytes / 2**30))
    try:
        run_t, version = torch_step(cfg, batch, os.cpu_count(), device=torch_device,
                                    autocast_dtype="bfloat16")
        tt = timeit(run_t, repeat=z["repeat"], warmup=2)
        del run_t
        out["torch_bf16_autocast"] = dict(version=version, device=torch_device, step_s=tt,
                                          examples_per_s=z["batch"] / tt,
                                          mfu=flops / tt / (peak_tflops * 1e12) if peak_tflops
                                          else None)
        out["jax_vs_torch"] = tt / t
    except ImportError as e:
        out["torch_bf16_autocast"] = f"not installed ({e})"
    return out


def tests(dry):
    env = {**os.environ, "JAX_DEFAULT_MATMUL_PRECISION": "highest", "XLA_FLAGS": ""}
    if not dry:
        env["JAX_PLATFORMS"] = ""           # the accelerator, not conftest's CPU default
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS, "-k",
           GPU_SELECTION]
    if dry:
        cmd.append("--collect-only")
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=360)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return dict(returncode=p.returncode, summary=lines[-1] if lines else "", failed=failed,
                output_tail=p.stdout[-3000:] if p.returncode else "",
                stderr_tail=p.stderr[-1500:] if p.returncode else "")


def fp16(z):
    import jax
    import numpy as np
    from benchmarks.train_step import jax_step, make_batch
    from xmrc_jax.tasks import span_qa
    run, _, _ = jax_step(_cfg(z), make_batch(z["batch"], z["seq"], z["vocab"]),
                         span_qa.mrc_objective, precision="fp16", lr=1e-4, keep_state=True)
    losses = [float(run()["loss"]) for _ in range(z["fp16_steps"])]
    scale = float(jax.device_get(run.state().dynamic_scale.scale))
    k = max(1, len(losses) // 5)
    return dict(losses=losses, all_finite=bool(np.isfinite(losses).all()),
                falls=bool(np.mean(losses[-k:]) < np.mean(losses[:k])), final_loss_scale=scale)


def attention(z):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from benchmarks.common import timeit
    from benchmarks.train_step import jax_step, make_batch
    from xmrc_jax.models import build_model, init_params
    from xmrc_jax.tasks import span_qa
    cfg = _cfg(z, attention_probs_dropout_prob=0.0)
    batch = make_batch(z["batch"], z["seq"], z["vocab"])
    out = {}
    impls = {"xla": None, "cudnn": "cudnn"} if jax.default_backend() == "gpu" else {"xla": None}
    for name, impl in impls.items():
        run, mem, _ = jax_step(cfg, batch, span_qa.mrc_objective, precision="bf16",
                               attention_impl=impl)
        t = timeit(run, repeat=z["repeat"], warmup=2)
        out[name] = dict(step_s=t, examples_per_s=z["batch"] / t,
                         temp_gib=mem.temp_size_in_bytes / 2**30)
        del run
    if "cudnn" in out:
        out["cudnn_speedup"] = out["xla"]["step_s"] / out["cudnn"]["step_s"]
        args = [jnp.asarray(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")]
        mods = {n: build_model(cfg, "span", dtype=jnp.bfloat16, attention_impl=i)
                for n, i in impls.items()}
        params = init_params(mods["xla"], jax.random.PRNGKey(0))
        h = {n: np.asarray(jax.jit(lambda p, m=m: m.apply({"params": p}, *args)
                                   .last_hidden_state.astype(jnp.float32))(params))
             for n, m in mods.items()}
        out["max_abs_hidden_difference"] = float(np.abs(h["xla"] - h["cudnn"]).max())
    else:
        out["cudnn"] = "not on this backend"
    return out


def remat(z):
    from benchmarks.train_step import jax_step, make_batch
    from xmrc_jax.tasks import span_qa
    cfg, batch = _cfg(z), make_batch(z["batch"], z["seq"], z["vocab"])
    temp = {}
    for on in (False, True):
        _, mem, _ = jax_step(cfg, batch, span_qa.mrc_objective, remat=on, precision="bf16")
        temp["with" if on else "without"] = mem.temp_size_in_bytes / 2**30
    return dict(temp_gib_without=temp["without"], temp_gib_with=temp["with"],
                reduction=temp["without"] / max(temp["with"], 1e-9))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", os.path.join(HERE, "results")))
    ap.add_argument("--dry", action="store_true", help="tiny sizes (CI, on the CPU)")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for all sections")
    args = ap.parse_args(argv)
    z = SIZES["dry" if args.dry else "full"]
    name = "device_dry.json" if args.dry else "device.json"
    report = Report(os.path.join(args.out, name), args.budget)
    report.data["config"] = dict(dry=args.dry, sizes=z, budget_s=args.budget)
    report.section("environment", environment)
    import jax
    on_gpu = jax.default_backend() == "gpu"
    report.section("matmul_peak", lambda: matmul_peak(z))
    peak = report.data["matmul_peak"].get("bfloat16_tflops")
    report.section("train_step", lambda: train_step(z, peak, "cuda" if on_gpu else "cpu"),
                   needs_s=0 if args.dry else 120)
    report.section("tests", lambda: tests(args.dry), needs_s=0 if args.dry else 150)
    report.section("fp16", lambda: fp16(z), needs_s=0 if args.dry else 60)
    report.section("attention", lambda: attention(z), needs_s=0 if args.dry else 90)
    report.section("remat", lambda: remat(z), needs_s=0 if args.dry else 60)
    return report.data


if __name__ == "__main__":
    main()

"""The one-call accelerator benchmark (benchmarks/device.py) in its dry mode, on the CPU: every
section runs at tiny sizes and writes its numbers, so the script is ready for a lent GPU."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_device_benchmark_dry_run_writes_every_section(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    p = subprocess.run([sys.executable, "benchmarks/device.py", "--dry", "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.load(open(tmp_path / "device_dry.json"))
    for section in ("environment", "matmul_peak", "train_step", "tests", "fp16", "attention",
                    "remat"):
        assert section in r and "error" not in r[section] and "skipped" not in r[section], (
            section, r.get(section))
    assert r["environment"]["precision_auto"] in ("fp32", "bf16", "fp16")
    assert r["matmul_peak"]["bfloat16_tflops"] > 0
    step = r["train_step"]["jax_bf16"]
    assert step["examples_per_s"] > 0 and 0 < step["mfu"]
    # the GPU test selection exists (collected, not run, in the dry mode)
    assert r["tests"]["returncode"] == 0 and "collected" in r["tests"]["summary"]
    assert int(r["tests"]["summary"].split("/")[0]) >= 40
    assert r["fp16"]["all_finite"] and r["fp16"]["falls"]
    assert r["attention"]["xla"]["step_s"] > 0
    assert r["remat"]["temp_gib_with"] <= r["remat"]["temp_gib_without"]

"""The package installs (``pip install .``) and runs a repository's config from any folder.

The install goes into a new, empty virtual environment, so the import can only find the
installed copy; the dependencies (jax, flax, ...) are those of the environment running the tests,
whatever kind it is (a venv, conda, a system-wide or ``--user`` install): the new environment
reads them through a ``.pth`` file that adds each of this interpreter's package folders, not
through ``--system-site-packages`` (which sees the base interpreter's packages, not a venv's).
"""

import os
import shutil
import site
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _package_dirs(exclude=()) -> list:
    """This interpreter's package folders (site-packages, user site, PYTHONPATH entries) in
    ``sys.path`` order, without ``exclude`` (the new environment's own path) and never the
    checkout itself."""
    root = os.path.realpath(ROOT)
    found = list(sys.path) + list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    out = []
    for p in found:
        real = os.path.realpath(p) if p else ""
        if (real and os.path.isdir(real) and real not in out and real not in exclude
                and real != root and not real.startswith(root + os.sep)):
            out.append(real)
    return out


def _venv_seeing_these_packages(venv) -> str:
    """A fresh venv (no packages of its own) whose ``sys.path`` ends with this interpreter's
    package folders; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    probe = ("import os, sys, sysconfig; print(sysconfig.get_paths()['purelib']); "
             "print(*(os.path.realpath(p) for p in sys.path if p), sep='\\n')")
    purelib, *own = subprocess.run([py, "-c", probe], capture_output=True, text=True,
                                   check=True).stdout.splitlines()
    # addsitedir also runs the .pth files there (editable installs, namespace packages)
    dirs = _package_dirs(exclude=set(own))
    with open(os.path.join(purelib, "zz_outer_environment.pth"), "w") as f:
        f.write("import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n")
    return py


def test_pip_install_and_run_from_another_folder(tmp_path):
    py = _venv_seeing_these_packages(tmp_path / "venv")
    src = tmp_path / "src"                      # a copy, so no build files land in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "cache", "*.egg-info",
                                                             "build", "__pycache__", "workdir*"))
    out = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(src)],
                         capture_output=True, text=True)
    if out.returncode != 0 and "Could not find a version" in out.stderr:
        pytest.skip("no package index for the build backend")
    assert out.returncode == 0, out.stderr[-2000:]
    where = tmp_path / "elsewhere"
    where.mkdir()
    loc = subprocess.run([py, "-c", "import xmrc_jax; print(xmrc_jax.__file__)"], cwd=where,
                         capture_output=True, text=True, check=True).stdout
    assert loc.startswith(str(tmp_path / "venv")) and "site-packages" in loc
    run = subprocess.run([py, "-m", "xmrc_jax.main", f"--config={ROOT}/configs/demo.py",
                          f"--workdir={tmp_path / 'wd'}", "--config.stages=(baseline,nope)"],
                         cwd=where, capture_output=True, text=True)
    assert run.returncode != 0 and "unknown stage 'nope'" in run.stderr, run.stderr[-2000:]

"""The search kernel's numba cache when the package directory is read-only.

numba tries, in order: NUMBA_CACHE_DIR, __pycache__ beside the source, the
user's cache directory. The subprocess tests run a fresh Python so that numba
chooses its cache directory (at import) under the conditions the test sets;
the real one (root only) runs as 'nobody' on a root-owned copy of the package.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
import numba.core.caching as caching

def unwritable(self):
    raise PermissionError(13, "simulated read-only directory", self.get_cache_path())

compile_ = sys.argv[1] == "compile"
for name in sys.argv[2:]:
    getattr(caching, name).ensure_cache_path = unwritable

import numpy as np
from edge.gallery import topk

found = [-1]
if compile_:
    rows = np.eye(8, dtype=np.float32)
    scores, found = topk.top_k(rows, rows[3], 2)
stats = topk._scan.stats
print(json.dumps({
    "best": int(found[0]),
    "cache_path": stats.cache_path,
    "hits": sum(stats.cache_hits.values()),
    "misses": sum(stats.cache_misses.values()),
    "module": topk.__file__,
}))
"""


def run_probe(env_updates, *unwritable_locators, user=None, cwd=None, compile_=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE") and k != "XDG_CACHE_HOME"}
    env.update(env_updates)
    command = [sys.executable, "-c", PROBE, "compile" if compile_ else "import", *unwritable_locators]
    if user is not None:
        command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *command]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_read_only_package_dir_falls_back_to_the_user_cache_dir(tmp_path, monkeypatch):
    """Which directory numba would cache the kernel in, with __pycache__ unwritable
    (simulated: as root a chmod would not stop the write)."""
    import numba.core.caching as caching

    from edge.gallery import topk

    def unwritable(self):
        raise PermissionError(13, "simulated read-only directory", self.get_cache_path())

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(caching.config, "CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(caching.InTreeCacheLocator, "ensure_cache_path", unwritable)
    locator = caching.FunctionCache(topk._scan.py_func)._impl.locator
    assert isinstance(locator, caching.UserWideCacheLocator)
    assert locator.get_cache_path().startswith(str(tmp_path / "cache" / "numba"))


@pytest.mark.slow
def test_no_writable_cache_dir_still_works(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    result = run_probe(env, "InTreeCacheLocator", "UserWideCacheLocator", compile_=False)
    assert result["cache_path"] is None  # importable; would compile in-process, writing nothing
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_installed_read_only_for_an_unprivileged_user():
    """A root-owned copy of the package, run as 'nobody': caches under that user's home."""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    if subprocess.run([*as_nobody, sys.executable, "-c", "import numba"], capture_output=True).returncode != 0:
        pytest.skip(f"'nobody' cannot use this Python environment ({sys.prefix} not readable by other users)")
    root = Path(tempfile.mkdtemp(prefix="edge-readonly-", dir="/tmp"))
    try:
        install = root / "site"
        shutil.copytree(REPO / "edge", install / "edge", ignore=shutil.ignore_patterns("__pycache__"))
        home = root / "home"
        home.mkdir()
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        home.chmod(0o700)
        env = {"HOME": str(home), "PYTHONPATH": str(install)}
        first = run_probe(env, user=nobody, cwd=root)
        assert first["module"].startswith(str(install))
        assert first["cache_path"].startswith(str(home / ".cache" / "numba"))
        assert not (install / "edge" / "__pycache__").exists() or not any(
            (install / "edge" / "__pycache__").glob("*.nbi")
        )
        second = run_probe(env, user=nobody, cwd=root)
        assert second["hits"] >= 1 and second["misses"] == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)

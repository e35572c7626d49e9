"""Fixtures of the netmap module's tests.

libnetmap fixes its runtime directory ($UNETMAP_DIR) at a process's first
use, so every test runs its body in a fresh interpreter (multiprocessing's
spawn) with a runtime directory of its own, removed afterwards. pkt-gen
comes from the build tree ($UNETMAP_BUILD/tools/pkt-gen).
"""

import concurrent.futures
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

BUILD = os.environ.get("UNETMAP_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
PKTGEN = os.path.join(BUILD, "tools", "pkt-gen")


@pytest.fixture
def unetmap_dir(monkeypatch):
    d = tempfile.mkdtemp(prefix="UNETMAP_DIR-pytest-", dir="/dev/shm")
    monkeypatch.setenv("UNETMAP_DIR", d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def isolated(unetmap_dir):
    """isolated(fn, *args): fn(*args) in a fresh interpreter that uses
    unetmap_dir; returns its result, re-raises its exception (with the
    child's traceback). fn must be a module-level function."""
    ctx = multiprocessing.get_context("spawn")

    def run(fn, *args, timeout=60):
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
            return ex.submit(fn, *args).result(timeout=timeout)

    return run


def pktgen_available():
    return os.access(PKTGEN, os.X_OK)


needs_pktgen = pytest.mark.skipif(not pktgen_available(), reason=f"pkt-gen not built at {PKTGEN}")


class PktGen:
    """pkt-gen in the background, in the test's runtime directory."""

    def __init__(self, args, unetmap_dir):
        env = dict(os.environ, UNETMAP_DIR=unetmap_dir)
        env.pop("PYTHONPATH", None)
        self.out = tempfile.TemporaryFile(mode="w+")
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([PKTGEN] + args, stdout=self.out, stderr=self.err, env=env)

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def stdout(self):
        self.out.seek(0)
        return self.out.read()

    def wait_open(self, port, timeout=10):
        """Until pkt-gen has port open (its 'PORT: N tx / N rx rings' line)."""
        deadline = time.monotonic() + timeout
        pat = f"pkt-gen: {port}: "
        while time.monotonic() < deadline:
            e = self.stderr()
            if pat in e and "rings of" in e:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"pkt-gen exited ({self.proc.returncode}) before opening {port}: {e}")
            time.sleep(0.02)
        raise AssertionError(f"pkt-gen did not open {port} within {timeout} s: {self.stderr()}")

    def wait(self, timeout=30):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"pkt-gen still running after {timeout} s: {self.stderr()} {self.stdout()}")
        return rc

    def summary(self):
        """The fields of pkt-gen's 'summary:' line (packets, bytes, ...)."""
        m = re.search(r"^summary: (.*)$", self.stdout(), re.M)
        assert m, f"no summary from pkt-gen: {self.stdout()} {self.stderr()}"
        return dict(kv.split("=", 1) for kv in m.group(1).split())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def pktgen(unetmap_dir):
    """pktgen(args...): start pkt-gen; every one started is killed at the end if still running."""
    started = []

    def start(*args):
        p = PktGen(list(args), unetmap_dir)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()

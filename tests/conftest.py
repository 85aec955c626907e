"""Shared fixtures: the backend parity fixture and fixture-tree helpers."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import procnet  # noqa: E402
from procnet import _backend  # noqa: E402

# In CI the native backend must be there: a test run that silently covered
# only the pure backend would prove nothing about the C core.
REQUIRE_NATIVE = os.environ.get("PROCNET_TEST_ALLOW_PURE_ONLY", "") in ("", "0")


class Impl:
    """One backend, forced on every call made through it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def connections(self, kind: str = "inet", **kw):
        kw.setdefault("backend", self.name)
        return procnet.connections(kind, **kw)

    def __repr__(self) -> str:
        return "Impl(%s)" % self.name


@pytest.fixture(params=["native", "pure"])
def impl(request) -> Impl:
    """Every test taking `impl` runs once per backend, through that backend."""
    if request.param == "native":
        err = _backend.native_error()
        if err is not None:
            if REQUIRE_NATIVE:
                pytest.fail("native backend not built: %s" % err)
            pytest.skip("native backend not built: %s" % err)
    return Impl(request.param)


@pytest.fixture
def both():
    """Both backends, for tests that compare them on the same input."""
    if _backend.native_error() is not None and not REQUIRE_NATIVE:
        pytest.skip("native backend not built")
    return Impl("native"), Impl("pure")


@pytest.fixture(scope="module")
def tracking():
    """Change tracking (Poller(track=True)) can load here; skipped with the reason if not."""
    from procnet import _native
    t, why = _native.open_tracker()
    if t is None:
        pytest.skip("change tracking cannot load here: " + why)
    t.close()


@pytest.fixture(scope="session")
def live():
    """Real sockets of every kind this kernel allows, held for the session."""
    from live_sockets import LiveSockets
    ls = LiveSockets().open()
    try:
        yield ls
    finally:
        ls.close()


def unreadable_pids(root: str = "/proc") -> list:
    """Pids whose fds this process cannot read, found with plain os calls: what
    a snapshot must report in denied_pids. Not always empty even for root: an
    LSM or a process beyond our reach (this CI's pid 1) refuses readlink."""
    out = []
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        fd_dir = os.path.join(root, name, "fd")
        try:
            fds = os.listdir(fd_dir)
        except FileNotFoundError:
            continue
        except OSError:
            out.append(int(name))
            continue
        for fd in fds:
            try:
                os.readlink(os.path.join(fd_dir, fd))
            except FileNotFoundError:
                continue
            except OSError:
                out.append(int(name))
            break
    return sorted(out)


def is_root() -> bool:
    return os.geteuid() == 0


def run_as_nobody(argv, **kw):
    """Run argv as the unprivileged user nobody (root only); skips when impossible.

    The interpreter must be usable by nobody: one installed under a 0700
    directory (pyenv under /root) is not, and then the test is skipped with
    that reason rather than failing for the wrong one.
    """
    import shutil
    import subprocess
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to become nobody")
    pre = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    pkg = os.path.dirname(os.path.dirname(procnet.__file__))
    env = dict(kw.pop("env", None) or os.environ, PYTHONPATH=pkg)
    probe = subprocess.run(pre + [sys.executable, "-c", "import procnet._native"],
                           capture_output=True, text=True, env=env, timeout=60)
    if probe.returncode != 0 and REQUIRE_NATIVE:
        pytest.skip("this interpreter cannot run as nobody: %s" % (probe.stderr.strip().splitlines() or ["?"])[-1])
    return subprocess.run(pre + argv, capture_output=True, text=True, env=env, timeout=120, **kw)

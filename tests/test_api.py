"""The public API surface: backend selection, argument errors, record behaviour."""
import json
import os
import pickle
import socket
import subprocess
import sys

import pytest

import procnet
from procfs_tree import inet_line, make_tree, sock, unix_line

ROOT_PKG = os.path.dirname(os.path.dirname(procnet.__file__))


def run_py(code, env=None):
    e = dict(os.environ, PYTHONPATH=ROOT_PKG)
    e.pop("PROCNET_BACKEND", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=60)


@pytest.fixture
def small_tree(tmp_path):
    make_tree(str(tmp_path), net={
        "tcp": [inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 111)],
        "unix": [unix_line(222, "/run/x y", listening=True)],
    }, procs={10: {"comm": "srv", "fd": {3: sock(111), 4: sock(222)}}})
    return str(tmp_path)


def test_unknown_kind_lists_valid_ones(impl):
    with pytest.raises(ValueError) as ei:
        impl.connections("tcp5")
    msg = str(ei.value)
    assert "tcp5" in msg and all(k in msg for k in ("inet", "udp6", "unix", "netlink", "all"))


@pytest.mark.parametrize("kw,word", [
    ({"lport": 70000}, "lport"), ({"rport": -1}, "rport"), ({"pid": "12"}, "pid"),
    ({"uid": -5}, "uid"), ({"state": "LISTENING"}, "LISTENING"), ({"byteorder": "middle"}, "byteorder"),
    ({"threads": -1}, "threads"), ({"lport": True}, "lport"),
])
def test_bad_arguments_name_themselves(impl, kw, word):
    with pytest.raises(ValueError) as ei:
        impl.connections("all", **kw)
    assert word in str(ei.value)


def test_unknown_backend():
    with pytest.raises(ValueError) as ei:
        procnet.connections(backend="rust")
    assert "native" in str(ei.value) and "pure" in str(ei.value)


def test_backend_env_var():
    r = run_py("import procnet; print(procnet.backend, procnet.connections(owners=False).backend)",
               {"PROCNET_BACKEND": "pure"})
    assert r.stdout.split() == ["pure", "pure"], r.stderr
    r = run_py("import procnet; print(procnet.backend)", {"PROCNET_BACKEND": "bogus"})
    assert r.returncode != 0 and "PROCNET_BACKEND" in r.stderr and "ProcNetError" in r.stderr


def test_default_backend_is_native_when_built():
    from procnet import _backend
    expected = "native" if _backend.native_error() is None else "pure"
    assert procnet.backend == expected


def test_native_missing_is_a_clear_error():
    # simulate a build without the C core
    code = ("import sys; sys.modules['procnet._core'] = None\n"
            "import procnet\n"
            "print(procnet.backend)\n"
            "try:\n"
            "    procnet.connections(backend='native')\n"
            "except procnet.BackendUnavailable as e:\n"
            "    print('ERR', e)\n")
    r = run_py(code)
    lines = r.stdout.splitlines()
    assert lines[0] == "pure", r.stderr
    assert lines[1].startswith("ERR the native backend is unavailable"), lines
    r = run_py("import sys; sys.modules['procnet._core'] = None\nimport procnet\n"
               "procnet.connections()", {"PROCNET_BACKEND": "native"})
    assert "BackendUnavailable" in r.stderr


def test_import_is_cheap():
    # tools that poll import procnet often: the C core loads on first use only
    r = run_py("import sys, procnet; print('procnet._native' in sys.modules, '_cffi_backend' in sys.modules)")
    assert r.stdout.split() == ["False", "False"], r.stderr


def test_records(impl, small_tree):
    snap = impl.connections("all", proc_root=small_tree, byteorder="little")
    assert isinstance(snap, procnet.Snapshot) and isinstance(snap, list)
    tcp, unix = snap
    assert isinstance(tcp, procnet.Connection)
    ip, port = tcp.laddr                        # unpacks like psutil's addr
    assert (ip, port) == ("127.0.0.1", 8080)
    assert isinstance(tcp.laddr, procnet.Address)
    assert tcp.owners == (procnet.Owner(pid=10, fd=3, name="srv"),)
    assert "laddr=Address(ip='127.0.0.1', port=8080)" in repr(tcp) and "LISTEN" in repr(tcp)
    assert tcp == tcp and tcp != unix and len({tcp, unix, tcp}) == 2
    d = json.loads(json.dumps(unix.as_dict()))
    assert d == {"proto": "unix", "family": "AF_UNIX", "type": "SOCK_STREAM", "laddr": "/run/x y",
                 "raddr": None, "state": "LISTEN", "tx_queue": 0, "rx_queue": 0, "uid": None,
                 "inode": 222, "protocol": 0, "owners": [{"pid": 10, "fd": 4, "name": "srv"}],
                 "netns": None}     # a fixture tree has no namespace links
    assert json.loads(json.dumps(tcp.as_dict()))["laddr"] == {"ip": "127.0.0.1", "port": 8080}
    assert "<Snapshot 2 sockets" in repr(snap)


def test_pickle_roundtrip(impl, small_tree):
    snap = impl.connections("all", proc_root=small_tree, byteorder="little")
    for c in snap:
        c2 = pickle.loads(pickle.dumps(c))
        assert c2 == c and c2.as_tuple() == c.as_tuple()


def test_snapshots_equal_across_backends(both, small_tree):
    a, b = (i.connections("all", proc_root=small_tree) for i in both)
    assert a == b and a.backend == "native" and b.backend == "pure"


def test_pathlike_root(impl, small_tree):
    import pathlib
    assert len(impl.connections("all", proc_root=pathlib.Path(small_tree))) == 2


def test_type_hints_shipped():
    assert os.path.exists(os.path.join(os.path.dirname(procnet.__file__), "py.typed"))
    assert procnet.connections.__annotations__["return"] is procnet.Snapshot


def test_family_and_type_are_enums(impl, small_tree):
    tcp, unix = impl.connections("all", proc_root=small_tree)
    assert tcp.family is socket.AF_INET and tcp.type is socket.SOCK_STREAM
    assert unix.family is socket.AF_UNIX


def test_kind_sets_and_table_names(impl, small_tree):
    assert {c.proto for c in impl.connections(("tcp4", "unix"), proc_root=small_tree)} == {"tcp", "unix"}
    snap = impl.connections(["udplite6", "tcp", "raw4"], proc_root=small_tree)
    assert set(snap.tables) == {"udplite6", "tcp", "tcp6", "raw"}
    with pytest.raises(ValueError) as ei:
        impl.connections(["tcp", "nope"], proc_root=small_tree)
    assert "nope" in str(ei.value)


def test_states_sharing_a_code_filter_together(impl, tmp_path):
    # unix LISTEN and NONE are the same kernel state, told apart by a flag
    make_tree(str(tmp_path), net={"unix": [unix_line(1, "/l", listening=True), unix_line(2, "/n"),
                                           unix_line(3, "/c", state=3)]})
    got = impl.connections("unix", proc_root=str(tmp_path), state=("LISTEN", "NONE"))
    assert sorted(c.inode for c in got) == [1, 2]


def test_bad_laddr(impl):
    with pytest.raises(ValueError) as ei:
        impl.connections("tcp", laddr="localhost")
    assert "laddr" in str(ei.value)


def test_gc_state_is_restored(impl, small_tree):
    import gc
    assert gc.isenabled()
    impl.connections("all", proc_root=small_tree)
    assert gc.isenabled()
    gc.disable()
    try:
        impl.connections("all", proc_root=small_tree)
        assert not gc.isenabled()          # a caller's choice is left alone
    finally:
        gc.enable()
    with pytest.raises(ValueError):
        impl.connections("bogus")
    assert gc.isenabled()

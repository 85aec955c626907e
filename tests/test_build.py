"""The build: the committed BPF objects, a build without clang, and build-dir reuse.

The BPF program is committed compiled (csrc/bpf/task_sockets_bpf{el,eb}.h,
procnet/_build_bpf.py); these tests need no clang. The build tests compile
the core with setuptools in a copy of the tree, as `pip install .` does.
"""
import errno
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BPF_DIR = os.path.join(REPO, "csrc", "bpf")


def load_by_path(name, rel):
    """A builder module, by path: the build scripts are not imported as procnet.*."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bb():
    return load_by_path("_pn_test_build_bpf", "procnet/_build_bpf.py")


# ---- the committed objects ----------------------------------------------------

def test_committed_objects_match_their_sources(bb):
    assert bb.problems() == [], (
        "regenerate with: PROCNET_CLANG=clang-14 python procnet/_build_bpf.py --regenerate")


def test_objects_are_bpf_elf_of_their_byte_order(bb):
    objs = {}
    for target in bb.TARGETS:
        meta, obj = bb.read_header(os.path.join(BPF_DIR, bb.generated_name(target)))
        assert meta["target"] == target
        assert obj[:4] == b"\x7fELF" and obj[4] == 2          # ELF64
        assert obj[5] == (1 if target == "bpfel" else 2)       # EI_DATA: LSB / MSB
        order = "little" if target == "bpfel" else "big"
        assert int.from_bytes(obj[18:20], order) == 247      # EM_BPF
        assert int.from_bytes(obj[16:18], order) == 1        # ET_REL: what libbpf opens
        assert b"pn_task_sockets" in obj                     # the program bpf_load.c looks up
        objs[target] = obj
    assert objs["bpfel"] != objs["bpfeb"]


def _copy_bpf_dir(tmp_path):
    d = tmp_path / "bpf"
    shutil.copytree(BPF_DIR, d)
    return str(d)


def test_an_edited_source_makes_them_stale(bb, tmp_path):
    d = _copy_bpf_dir(tmp_path)
    with open(os.path.join(d, "pn_kernel_types.h"), "a") as f:
        f.write("/* an edit */\n")
    bad = bb.problems(d)
    assert len(bad) == 2 and all("stale" in p for p in bad), bad


def test_a_new_input_file_makes_them_stale(bb, tmp_path):
    d = _copy_bpf_dir(tmp_path)
    with open(os.path.join(d, "extra.h"), "w") as f:
        f.write("#define X 1\n")
    assert "extra.h" in bb.input_names(d)
    assert len(bb.problems(d)) == 2


def test_an_edited_object_is_caught(bb, tmp_path):
    d = _copy_bpf_dir(tmp_path)
    path = os.path.join(d, bb.generated_name("bpfel"))
    with open(path) as f:
        text = f.read()
    start = text.index("pn_bpf_obj[] = {") + len("pn_bpf_obj[] = {")
    i = text.index("0x", start + 200)
    flipped = "0x%02x" % (int(text[i:i + 4], 16) ^ 1)
    with open(path, "w") as f:
        f.write(text[:i] + flipped + text[i + 4:])
    bad = bb.problems(d)
    assert len(bad) == 1 and "does not match its recorded sha256" in bad[0], bad


def test_the_flags_are_part_of_the_hash(bb, monkeypatch):
    el = bb.inputs_hash("bpfel")
    assert el != bb.inputs_hash("bpfeb")
    monkeypatch.setattr(bb, "CFLAGS", bb.CFLAGS + ["-DX"])
    assert bb.inputs_hash("bpfel") != el


@pytest.mark.parametrize("order,target", [("__ORDER_LITTLE_ENDIAN__", "bpfel"),
                                          ("__ORDER_BIG_ENDIAN__", "bpfeb"),
                                          ("__ORDER_PDP_ENDIAN__", None)])
def test_the_c_compiler_picks_the_object_by_its_byte_order(order, target):
    """pn_bpf_obj.h, as bpf_load.c includes it, for a target of each byte order
    (the host compiler told another order: cross compilers are the cross tier's)."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        pytest.skip("no C compiler")
    p = subprocess.run([cc, "-E", "-U__BYTE_ORDER__", "-D__BYTE_ORDER__=" + order,
                        os.path.join(BPF_DIR, "pn_bpf_obj.h")],
                       capture_output=True, text=True, timeout=60)
    if target is None:
        assert p.returncode != 0 and "little- and big-endian kernels only" in p.stderr
        return
    assert p.returncode == 0, p.stderr
    other = "bpfeb" if target == "bpfel" else "bpfel"
    assert "task_sockets_%s.h" % target in p.stdout              # cpp's line markers
    assert "task_sockets_%s.h" % other not in p.stdout


def test_every_input_is_a_dependency_of_the_extension():
    """The extension's depends= name every header and BPF file, or an edit of
    one would leave an old core in a reused build dir."""
    ffi = load_by_path("_pn_test_build_ffi", "procnet/_build_ffi.py")
    kw = ffi.ffibuilder._assigned_source[3]
    listed = set(kw["sources"]) | set(kw["depends"])
    want = {"csrc/" + f for f in os.listdir(os.path.join(REPO, "csrc")) if f.endswith((".c", ".h"))}
    want |= {"csrc/bpf/" + f for f in os.listdir(BPF_DIR) if f.endswith((".c", ".h"))}
    assert want <= listed, sorted(want - listed)


# ---- building the core ------------------------------------------------------------

# Loads the built extension alone (not the package around it) and tries the
# BPF source: {"rc", "errno", "why"}; errno ENOSYS = built without the program.
PROBE = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("procnet._core", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
out = m.ffi.new("struct pn_bpf **")
why = m.ffi.new("char[]", 256)
rc = m.lib.pn_bpf_open(out, why, 256)
print(json.dumps({"rc": rc, "errno": m.ffi.errno if rc else 0,
                  "why": m.ffi.string(why).decode("utf-8", "replace")}))
"""


class Tree:
    """A copy of the project to build in, as pip builds a checkout."""

    def __init__(self, root, clang_stubs):
        self.root = root
        self.stubs = clang_stubs
        ignore = shutil.ignore_patterns("*.so", "__pycache__", "_core.c", "*.egg-info")
        for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md"):
            shutil.copy(os.path.join(REPO, name), root)
        for name in ("procnet", "csrc"):
            shutil.copytree(os.path.join(REPO, name), os.path.join(root, name), ignore=ignore)

    def build(self, clang=False, **env):
        """`setup.py build` (what pip runs for a wheel); the build's stderr."""
        e = {k: v for k, v in os.environ.items()
             if k not in ("PROCNET_SANITIZE", "PROCNET_NO_BPF", "PROCNET_CLANG", "CC", "CFLAGS",
                          "CPPFLAGS", "LDSHARED", "LDFLAGS")}
        e["PROCNET_REQUIRE_NATIVE"] = "1"
        if not clang:       # as the stop hook does: failing stubs first on PATH, and /bin/false
            e["PATH"] = self.stubs + os.pathsep + e.get("PATH", "")
            e["PROCNET_CLANG"] = "/bin/false"
        e.update(env)
        p = subprocess.run([sys.executable, "setup.py", "build"], cwd=self.root, env=e,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        return p.stderr

    @property
    def core(self):
        found = glob.glob(os.path.join(self.root, "build", "lib*", "procnet", "_core*.so"))
        assert len(found) == 1, found
        return found[0]

    def stamp(self):
        st = os.stat(self.core)
        with open(self.core, "rb") as f:
            return st.st_ino, st.st_mtime_ns, hashlib.sha256(f.read()).hexdigest()

    def bpf(self):
        p = subprocess.run([sys.executable, "-c", PROBE, self.core], capture_output=True,
                           text=True, timeout=120, cwd=self.root)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def embeds(self, target):
        _, obj = load_by_path("_pn_tb", "procnet/_build_bpf.py").read_header(
            os.path.join(BPF_DIR, "task_sockets_%s.h" % target))
        with open(self.core, "rb") as f:
            return obj in f.read()


@pytest.fixture
def tree(tmp_path):
    if os.environ.get("PROCNET_EMULATED"):
        pytest.skip("builds are tested on the host, not under qemu-user")
    if not shutil.which(os.environ.get("CC", "cc")):
        pytest.skip("no C compiler")
    pytest.importorskip("cffi")
    pytest.importorskip("setuptools")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ["clang", "clang-%d" % 14] + ["clang-%d" % v for v in range(15, 20)]:
        stub = stubs / name
        stub.write_text("#!/bin/sh\nexit 1\n")
        stub.chmod(0o755)
    (tmp_path / "src").mkdir()
    return Tree(str(tmp_path / "src"), str(stubs))


HOST = "bpfel" if sys.byteorder == "little" else "bpfeb"
OTHER = "bpfeb" if HOST == "bpfel" else "bpfel"


def test_a_build_without_clang_embeds_the_committed_object_and_never_reuses_a_stale_core(tree):
    # 1. A build dir made without the BPF program ...
    tree.build(PROCNET_NO_BPF="1")
    r = tree.bpf()
    assert r["rc"] == -1 and r["errno"] == errno.ENOSYS, r
    assert not tree.embeds(HOST)
    # 2. ... is rebuilt by a build that has it, and that needs no clang:
    #    the committed object of this byte order is in the core, verbatim.
    err = tree.build()
    assert "procnet:" not in err, err           # nothing stale, nothing rebuilt with clang
    r = tree.bpf()
    assert r["errno"] != errno.ENOSYS, r
    assert tree.embeds(HOST) and not tree.embeds(OTHER)
    # 3. Nothing changed: the core is reused, not rebuilt.
    before = tree.stamp()
    tree.build()
    assert tree.stamp() == before
    # 4. A header edited within the same second (whole-second mtimes do not
    #    see it): rebuilt.
    with open(os.path.join(tree.root, "csrc", "pn_internal.h"), "a") as f:
        f.write("\n/* an edit */\n")
    tree.build()
    after = tree.stamp()
    assert after[1:] != before[1:]
    # 5. A build dir whose core was changed behind the build's back: rebuilt.
    with open(tree.core, "ab") as f:
        f.write(b"\0")
    changed = tree.stamp()
    tree.build()
    assert tree.stamp()[2] != changed[2]
    assert tree.bpf()["errno"] != errno.ENOSYS


def test_a_stale_committed_object_is_never_shipped(tree):
    with open(os.path.join(tree.root, "csrc", "bpf", "task_sockets.bpf.c"), "a") as f:
        f.write("\n/* an edit, not regenerated */\n")
    err = tree.build()
    assert "is stale" in err and "building without the BPF owner source" in err, err
    r = tree.bpf()
    assert r["errno"] == errno.ENOSYS, r
    assert not tree.embeds(HOST)
    if not load_by_path("_pn_tb2", "procnet/_build_bpf.py").find_clang():
        return
    # With a clang, the build compiles the edited program itself (and says so).
    err = tree.build(clang=True)
    assert "built them here" in err, err
    r = tree.bpf()
    assert r["errno"] != errno.ENOSYS, r
    assert not tree.embeds(HOST)

"""procnet's BPF program (csrc/bpf/task_sockets.bpf.c), compiled once and committed.

Building procnet needs no clang: the program is committed compiled, for both
byte orders, as generated C headers next to its source (cilium/ebpf's bpf2go
convention, ``*_bpfel`` / ``*_bpfeb``)::

    csrc/bpf/task_sockets_bpfel.h    the ELF object for little-endian kernels
    csrc/bpf/task_sockets_bpfeb.h    ... for big-endian ones
    csrc/bpf/pn_bpf_obj.h            picks one by the C compiler's __BYTE_ORDER__

Each holds ``pn_bpf_obj[]`` / ``pn_bpf_obj_len`` and a comment recording what
it was built from: the sha256 of its inputs (every source file in csrc/bpf/,
by name and content, and the clang flags), the compiler, and the object's own
sha256. Headers, not .o files: C has no portable #embed, so a .o would need a
generation step at build time; a header builds with any C compiler and any
build route (setuptools, crossenv, the cross tier's manual route, the C
tests), and the C compiler, which knows the target's byte order, picks the
object -- never the Python running the build (under crossenv that is the
host's).

Command line (``python procnet/_build_bpf.py ...``):
  --check              the committed objects match their recorded inputs (no clang)
  --check --rebuild    also recompile with clang and compare the bytes (CI)
  --regenerate         recompile with clang and rewrite the committed headers
  OUT_DIR              (the old interface) exit 0 when the committed objects
                       are usable, 1 when stale; writes nothing

The compiler: $PROCNET_CLANG, else the first of clang, clang-19 ... clang-14
on PATH whose ``-print-targets`` lists bpf. Its bytes depend on its version
(DWARF names the producer): ``--check --rebuild`` demands the version that
made the committed objects, which is CI's clang-14.

For the build (procnet/_build_ffi.py): ``build_config(build_dir)``. When the
committed objects are stale (a source edited, not regenerated) it compiles
them into ``build_dir/pn_bpf_obj_local.h`` if a clang can, and otherwise
leaves the BPF source out: a stale object never ships. PROCNET_NO_BPF=1
leaves it out on purpose (the core then says it was built without it).
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BPF_DIR = os.path.join(ROOT, "csrc", "bpf")
SOURCE = "task_sockets.bpf.c"
TARGETS = ("bpfel", "bpfeb")
SELECTOR = "pn_bpf_obj.h"              # hand-written: includes one generated header
LOCAL_HEADER = "pn_bpf_obj_local.h"    # a local rebuild of stale objects (build dir)

CANDIDATES = ["clang"] + ["clang-%d" % v for v in range(19, 13, -1)]

# -g: clang emits the BTF and CO-RE relocations libbpf needs from it.
# -mcpu=v3: iter/task_file needs Linux 5.8, which runs v3 (5.1+).
# -fdebug-compilation-dir=.: DWARF names "." rather than the checkout's path,
# so the bytes do not depend on where the tree lies (run from BPF_DIR).
CFLAGS = ["-mcpu=v3", "-O2", "-g", "-Wall", "-fdebug-compilation-dir=.", "-I."]

ELF_MACHINE_BPF = 247


def _say(msg: str) -> None:
    print("procnet: " + msg, file=sys.stderr)


def generated_name(target: str) -> str:
    """The committed header for target ('bpfel' or 'bpfeb')."""
    if target not in TARGETS:
        raise ValueError("target must be one of %s, not %r" % (TARGETS, target))
    return "task_sockets_%s.h" % target


def clang_args(target: str) -> List[str]:
    """clang's arguments (after the compiler), run from the BPF directory."""
    generated_name(target)                 # validates target
    return ["-target", target] + CFLAGS + ["-c", SOURCE]


def input_names(bpf_dir: str = BPF_DIR) -> List[str]:
    """Every file the objects are built from: csrc/bpf's sources, not its outputs."""
    outputs = {SELECTOR} | {generated_name(t) for t in TARGETS}
    return sorted(f for f in os.listdir(bpf_dir)
                  if f.endswith((".c", ".h")) and f not in outputs)


def inputs_hash(target: str, bpf_dir: str = BPF_DIR) -> str:
    """sha256 over the inputs (names and contents) and the clang arguments."""
    h = hashlib.sha256()
    for name in input_names(bpf_dir):
        with open(os.path.join(bpf_dir, name), "rb") as f:
            data = f.read()
        h.update(b"file %s %d\n" % (name.encode(), len(data)))
        h.update(data)
    h.update(("clang %s\n" % " ".join(clang_args(target))).encode())
    return h.hexdigest()


# ---- the generated header ---------------------------------------------------

_META = re.compile(r"^ \* (inputs-sha256|object-sha256|object-bytes|target|compiler): (.*)$", re.M)
_ARRAY = re.compile(r"pn_bpf_obj\[\] = \{(.*?)\};", re.S)


def header_text(target: str, obj: bytes, compiler: str, inputs: str) -> str:
    """The generated header for one object."""
    rows = "\n".join("    " + ", ".join("0x%02x" % b for b in obj[i:i + 16]) + ","
                     for i in range(0, len(obj), 16))
    guard = "PN_TASK_SOCKETS_%s_H" % target.upper()
    return (
        "/* Code generated by procnet/_build_bpf.py --regenerate; DO NOT EDIT.\n"
        " *\n"
        " * csrc/bpf/%(src)s compiled for %(target)s kernels: the ELF object that\n"
        " * csrc/bpf_load.c hands to libbpf (through pn_bpf_obj.h). Built from:\n"
        " * target: %(target)s\n"
        " * inputs-sha256: %(inputs)s\n"
        " *   (%(names)s; clang %(args)s)\n"
        " * compiler: %(compiler)s\n"
        " * object-sha256: %(objsha)s\n"
        " * object-bytes: %(n)d\n"
        " */\n"
        "#ifndef %(guard)s\n#define %(guard)s\n"
        "#include <stddef.h>\n"
        "#define PN_BPF_OBJ_INPUTS_SHA256 \"%(inputs)s\"\n"
        "static const _Alignas(8) unsigned char pn_bpf_obj[] = {\n%(rows)s\n};\n"
        "static const size_t pn_bpf_obj_len = %(n)d;\n"
        "#endif\n" % {
            "src": SOURCE, "target": target, "inputs": inputs,
            "names": ", ".join(input_names()), "args": " ".join(clang_args(target)),
            "compiler": compiler, "objsha": hashlib.sha256(obj).hexdigest(),
            "n": len(obj), "guard": guard, "rows": rows})


def read_header(path: str) -> Tuple[Dict[str, str], bytes]:
    """(recorded fields, object bytes) of a generated header; ValueError if malformed."""
    with open(path) as f:
        text = f.read()
    meta = dict(_META.findall(text))
    arr = _ARRAY.search(text)
    if arr is None or len(meta) != 5:
        raise ValueError("%s: not a header written by procnet/_build_bpf.py" % path)
    try:
        obj = bytes(int(tok, 16) for tok in arr.group(1).replace(",", " ").split())
    except ValueError:
        raise ValueError("%s: the object array is not hex bytes" % path) from None
    return meta, obj


def _elf_problem(obj: bytes, target: str) -> Optional[str]:
    """Why obj is not a 64-bit relocatable BPF ELF object of target's byte order."""
    if obj[:4] != b"\x7fELF" or len(obj) < 64:
        return "not an ELF file"
    if obj[4] != 2:
        return "not ELF64"
    want = 1 if target == "bpfel" else 2            # EI_DATA: ELFDATA2LSB / ELFDATA2MSB
    if obj[5] != want:
        return "the wrong byte order for %s" % target
    order = "little" if want == 1 else "big"
    if int.from_bytes(obj[18:20], order) != ELF_MACHINE_BPF:
        return "not for the BPF machine"
    return None


def problems(bpf_dir: str = BPF_DIR) -> List[str]:
    """What is wrong with the committed objects (no clang needed); empty when sound."""
    out = []
    for target in TARGETS:
        path = os.path.join(bpf_dir, generated_name(target))
        rel = os.path.relpath(path, ROOT)
        try:
            meta, obj = read_header(path)
        except (OSError, ValueError) as e:
            out.append("%s: %s" % (rel, e))
            continue
        if meta["target"] != target:
            out.append("%s: records target %s" % (rel, meta["target"]))
        if meta["inputs-sha256"] != inputs_hash(target, bpf_dir):
            out.append("%s is stale: its inputs changed since it was generated" % rel)
        if (meta["object-sha256"] != hashlib.sha256(obj).hexdigest()
                or meta["object-bytes"] != str(len(obj))):
            out.append("%s: the object does not match its recorded sha256/size" % rel)
        why = _elf_problem(obj, target)
        if why:
            out.append("%s: the object is %s" % (rel, why))
    return out


# ---- clang ------------------------------------------------------------------

def _has_bpf_target(clang: str) -> bool:
    try:
        out = subprocess.run([clang, "-print-targets"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(
        line.split()[:1] in (["bpf"], ["bpfel"], ["bpfeb"]) for line in out.stdout.splitlines())


def find_clang() -> Optional[str]:
    """The path of a clang that can target BPF, or None."""
    forced = os.environ.get("PROCNET_CLANG")
    names = [forced] if forced else CANDIDATES
    for name in names:
        path = shutil.which(name)
        if path and _has_bpf_target(path):
            return path
    return None


def clang_version(clang: str) -> str:
    """The first line of ``clang --version`` (e.g. 'Debian clang version 14.0.6')."""
    out = subprocess.run([clang, "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, timeout=60, check=True)
    return out.stdout.splitlines()[0].strip()


def compile_object(clang: str, target: str, bpf_dir: str = BPF_DIR) -> bytes:
    """The object clang makes for target; RuntimeError (with clang's output) if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        obj_path = os.path.join(tmp, "obj.o")
        cmd = [clang] + clang_args(target) + ["-o", obj_path]
        try:
            res = subprocess.run(cmd, cwd=bpf_dir, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            raise RuntimeError("%s failed to run: %s" % (clang, e)) from None
        if res.returncode != 0:
            raise RuntimeError("%s could not compile %s for %s:\n%s"
                               % (clang, SOURCE, target, res.stdout.rstrip()))
        if res.stdout.strip():
            _say("warnings compiling %s for %s:\n%s" % (SOURCE, target, res.stdout.rstrip()))
        with open(obj_path, "rb") as f:
            return f.read()


def _write_atomic(path: str, text: str) -> None:
    """Write-then-rename: a concurrent build never sees half a file."""
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def regenerate(clang: str) -> None:
    """Recompile both objects and rewrite the committed headers."""
    compiler = clang_version(clang)
    for target in TARGETS:
        obj = compile_object(clang, target)
        why = _elf_problem(obj, target)
        if why:
            raise RuntimeError("%s made an object that is %s" % (clang, why))
        path = os.path.join(BPF_DIR, generated_name(target))
        _write_atomic(path, header_text(target, obj, compiler, inputs_hash(target)))
        print("wrote %s (%d bytes of object, %s)" % (os.path.relpath(path, ROOT), len(obj), compiler))


def rebuild_differences(clang: str) -> List[str]:
    """Recompile both objects; what differs from the committed ones (empty: identical)."""
    out = []
    compiler = clang_version(clang)
    for target in TARGETS:
        rel = os.path.join("csrc", "bpf", generated_name(target))
        meta, committed = read_header(os.path.join(BPF_DIR, generated_name(target)))
        obj = compile_object(clang, target)
        if obj == committed:
            continue
        if meta["compiler"] != compiler:
            out.append("%s was made by %s, this is %s: its bytes cannot be compared; "
                       "regenerate with the compiler CI uses" % (rel, meta["compiler"], compiler))
        else:
            out.append("%s differs from what %s makes of its sources now (%d vs %d bytes)"
                       % (rel, compiler, len(committed), len(obj)))
    return out


# ---- for the build ----------------------------------------------------------

def _local_header(clang: str, out_dir: str) -> None:
    """out_dir/pn_bpf_obj_local.h: both objects freshly built, picked by byte order."""
    parts = []
    compiler = clang_version(clang)
    for target in TARGETS:
        text = header_text(target, compile_object(clang, target), compiler, inputs_hash(target))
        cond = "#if" if target == "bpfel" else "#elif"
        order = "LITTLE" if target == "bpfel" else "BIG"
        parts.append("%s __BYTE_ORDER__ == __ORDER_%s_ENDIAN__\n%s" % (cond, order, text))
    _write_atomic(os.path.join(out_dir, LOCAL_HEADER),
                  "/* A local rebuild of stale committed BPF objects (procnet/_build_bpf.py). */\n"
                  + "".join(parts) + "#else\n#error \"unknown byte order\"\n#endif\n")


def build_config(build_dir: str) -> Tuple[list, list, list]:
    """(define_macros, include_dirs, depends) for the C core's BPF owner source.

    The committed objects when sound; a local rebuild into build_dir when they
    are stale and a clang can; else nothing (the core then reports the BPF
    source unavailable) and one line on stderr saying why.
    """
    depends = [os.path.join("csrc", "bpf", f) for f in sorted(os.listdir(BPF_DIR))
               if f.endswith((".c", ".h"))]
    if os.environ.get("PROCNET_NO_BPF"):
        return [], [], depends
    bad = problems()
    if not bad:
        return [("PN_HAVE_BPF_OBJ", None)], [], depends
    _say("the committed BPF objects cannot be used: %s" % "; ".join(bad))
    clang = find_clang()
    if clang:
        try:
            _local_header(clang, build_dir)
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            _say("%s; building without the BPF owner source" % e)
            return [], [], depends
        _say("built them here with %s instead; run `python procnet/_build_bpf.py "
             "--regenerate` and commit the result" % clang)
        return ([("PN_HAVE_BPF_OBJ", None), ("PN_BPF_OBJ_LOCAL", None)], [build_dir],
                depends + [os.path.join(build_dir, LOCAL_HEADER)])
    _say("no clang with a BPF target to rebuild them (tried %s); building without the "
         "BPF owner source" % (os.environ.get("PROCNET_CLANG") or ", ".join(CANDIDATES)))
    return [], [], depends


def main(argv: List[str]) -> int:
    """The command line; see the module docstring."""
    args = set(argv)
    if args == {"--check"}:
        bad = problems()
        for p in bad:
            print(p, file=sys.stderr)
        if not bad:
            print("the committed BPF objects match their sources")
        return 1 if bad else 0
    if args in ({"--regenerate"}, {"--check", "--rebuild"}):
        clang = find_clang()
        if not clang:
            _say("no clang with a BPF target (tried %s)"
                 % (os.environ.get("PROCNET_CLANG") or ", ".join(CANDIDATES)))
            return 1
        try:
            if "--regenerate" in args:
                regenerate(clang)
                return 0
            bad = problems() + rebuild_differences(clang)
        except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
            _say(str(e))
            return 1
        for p in bad:
            print(p, file=sys.stderr)
        if not bad:
            print("the committed BPF objects are what %s makes of their sources"
                  % clang_version(clang))
        return 1 if bad else 0
    if len(argv) == 1 and not argv[0].startswith("-"):
        # The old interface (tests/c/bpf/run_bpf.sh): the object is committed now.
        bad = problems()
        for p in bad:
            print(p, file=sys.stderr)
        if bad:
            _say("regenerate them: python procnet/_build_bpf.py --regenerate")
        return 1 if bad else 0
    print("usage: python procnet/_build_bpf.py --check [--rebuild] | --regenerate",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""cffi builder for procnet's C core (out-of-line API mode).

Used by setup.py through ``cffi_modules=["procnet/_build_ffi.py:ffibuilder"]``.
The cdef is read from the real header, between its PN_CDEF markers, so the
declarations Python sees can never drift from the ones C compiles. The BPF
owner program is embedded from its committed objects (procnet/_build_bpf.py:
no clang needed). ``depends=`` names every input besides the sources, which
setup.py's build_ext hashes to decide whether a build dir may be reused.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CSRC = os.path.join(ROOT, "csrc")


def _read_version() -> str:
    with open(os.path.join(HERE, "_version.py")) as f:
        m = re.search(r'__version__\s*=\s*"([^"]+)"', f.read())
    assert m, "no __version__ in _version.py"
    return m.group(1)


def _cdef() -> str:
    with open(os.path.join(CSRC, "procnet.h")) as f:
        text = f.read()
    m = re.search(r"/\* PN_CDEF_BEGIN \*/(.*)/\* PN_CDEF_END \*/", text, re.S)
    assert m, "procnet.h lacks the PN_CDEF markers"
    return m.group(1)


def _sources() -> list:
    # Every core file; the BPF program (csrc/bpf/) is committed compiled, as
    # headers bpf_load.c includes (procnet/_build_bpf.py).
    # Relative to the project root: setuptools refuses absolute paths, and it
    # (like compile() below) runs from there.
    return sorted("csrc/" + f for f in os.listdir(CSRC) if f.endswith(".c"))


def _compile_args() -> list:
    args = ["-std=c11", "-O2", "-pthread", "-fvisibility=hidden"]
    if os.environ.get("PROCNET_SANITIZE"):
        # e.g. PROCNET_SANITIZE=address,undefined for the sanitizer test run
        args += ["-fsanitize=" + os.environ["PROCNET_SANITIZE"], "-fno-omit-frame-pointer", "-O1", "-g"]
    return args


def _link_args() -> list:
    args = ["-pthread"]
    if os.environ.get("PROCNET_SANITIZE"):
        args += ["-fsanitize=" + os.environ["PROCNET_SANITIZE"]]
    return args


def _build_bpf():
    """procnet/_build_bpf.py, loaded by path (the package is not importable mid-build)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_pn_build_bpf", os.path.join(HERE, "_build_bpf.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _depends(bpf_depends: list) -> list:
    """Every input of the extension besides its sources, relative to the root:
    every header, the committed BPF objects and the two builder scripts.
    setup.py's build_ext rebuilds the extension when any of these, a source or
    a build setting differs from what the built extension was made of."""
    headers = sorted("csrc/" + f for f in os.listdir(CSRC) if f.endswith(".h"))
    return headers + bpf_depends + ["procnet/_build_ffi.py", "procnet/_build_bpf.py"]


# Relative to the project root, like the sources: setuptools runs from there.
_BPF_MACROS, _BPF_INCLUDES, _BPF_DEPENDS = _build_bpf().build_config(os.path.join("build", "bpf"))

ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "procnet._core",
    '#include "procnet.h"',
    sources=_sources(),
    depends=_depends(_BPF_DEPENDS),
    include_dirs=["csrc"] + _BPF_INCLUDES,
    define_macros=[("PN_VERSION", '"%s"' % _read_version())] + _BPF_MACROS,
    libraries=["dl"],          # dlopen(libbpf): in libc since glibc 2.34, -ldl before
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
)

if __name__ == "__main__":
    # In-place development build: procnet/_core*.so next to the sources.
    ffibuilder.compile(tmpdir=ROOT, verbose=True)

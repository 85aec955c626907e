"""C helpers the tests build on the fly: small programs and LD_PRELOAD shims."""
import shutil
import subprocess

import pytest


def preload(shim: str) -> str:
    """LD_PRELOAD with shim after what is preloaded already (a sanitizer's
    runtime must stay first)."""
    import os
    return " ".join(p for p in (os.environ.get("LD_PRELOAD", ""), shim) if p)


def compiled(tmp_path_factory, name: str, source: str, shared: bool = False) -> str:
    """The path of a program (or, shared=True, an LD_PRELOAD library) built
    from `source`; the test is skipped without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp(name)
    (d / "s.c").write_text(source)
    out = d / ("s.so" if shared else "s")
    flags = ["-shared", "-fPIC"] if shared else []
    subprocess.run([cc, *flags, "-O1", "-o", str(out), str(d / "s.c"), "-ldl", "-pthread"],
                   check=True)
    return str(out)

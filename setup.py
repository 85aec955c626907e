"""Build the cffi extension; fall back to the pure backend where it cannot be built.

PROCNET_REQUIRE_NATIVE=1 turns the fallback into a hard failure (wheel builds
must never silently ship without the C core).

A build dir is reused only when it holds exactly what this build would make:
setuptools alone compares whole-second mtimes and ignores the settings (a
build without the BPF object, a sanitizer build), and then reports an old
core "up-to-date". Here the extension is rebuilt unless the sha256 of its
sources, its ``depends`` (procnet/_build_ffi.py lists every header and the
committed BPF objects), its settings and the built file itself match what the
last build of it recorded.
"""
import hashlib
import json
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

STRICT = os.environ.get("PROCNET_REQUIRE_NATIVE", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """build_ext that degrades to a warning unless PROCNET_REQUIRE_NATIVE is set."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler, no headers, ...
            self._fallback(e)

    def build_extension(self, ext):
        try:
            record = os.path.join(self.build_temp, ext.name + ".inputs.json")
            want = _fingerprint(ext, self.get_ext_fullpath(ext.name))
            force = self.force
            self.force = force or _recorded(record) != want
            if self.force and not self.inplace and os.path.exists(want["path"]):
                # Never left to ship, should this build fail: it is out of date.
                os.unlink(want["path"])
            try:
                super().build_extension(ext)
            finally:
                self.force = force
            want["built"] = _file_sha256(want["path"])
            _record(record, want)
        except Exception as e:
            self._fallback(e)

    def _fallback(self, err):
        if STRICT:
            raise err
        sys.stderr.write(
            "\n*** procnet: the C core could not be built (%s).\n"
            "*** Installing the pure-Python backend only; set PROCNET_REQUIRE_NATIVE=1 "
            "to make this an error.\n\n" % (err,))


def _file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def _fingerprint(ext, path):
    """What the extension at path is made of: inputs by content, and settings."""
    inputs = {}
    for name in sorted(set(ext.sources) | set(ext.depends)):
        inputs[name] = _file_sha256(name) if os.path.exists(name) else None
    settings = {k: repr(getattr(ext, k, None)) for k in (
        "define_macros", "undef_macros", "include_dirs", "library_dirs", "libraries",
        "extra_compile_args", "extra_link_args", "extra_objects", "py_limited_api")}
    # The compiler and flags the environment hands distutils.
    env = {k: os.environ.get(k) for k in ("CC", "CFLAGS", "CPPFLAGS", "LDSHARED", "LDFLAGS")}
    return {"path": os.path.abspath(path), "inputs": inputs, "settings": settings, "env": env}


def _recorded(record):
    """The fingerprint the last build recorded, with the built file's current
    sha256 in place of the one recorded; None if there is none."""
    try:
        with open(record) as f:
            old = json.load(f)
        built = old.pop("built")
        if not os.path.exists(old["path"]) or _file_sha256(old["path"]) != built:
            return None
        return old
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _record(record, fingerprint):
    os.makedirs(os.path.dirname(record), exist_ok=True)
    tmp = "%s.%d" % (record, os.getpid())
    with open(tmp, "w") as f:
        json.dump(fingerprint, f, indent=1, sort_keys=True)
    os.replace(tmp, record)


setup(
    cffi_modules=["procnet/_build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)

"""Build the cffi extension; fall back to the pure backend where it cannot be built.

PROCNET_REQUIRE_NATIVE=1 turns the fallback into a hard failure (wheel builds
must never silently ship without the C core).
"""
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
            super().build_extension(ext)
        except Exception as e:
            self._fallback(e)

    def _fallback(self, err):
        if STRICT:
            raise err
        sys.stderr.write(
            "\n*** procnet: the C core could not be built (%s).\n"
            "*** Installing the pure-Python backend only; set PROCNET_REQUIRE_NATIVE=1 "
            "to make this an error.\n\n" % (err,))


setup(
    cffi_modules=["procnet/_build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)

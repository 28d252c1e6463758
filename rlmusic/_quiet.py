"""Quiet imports for the command line: TensorFlow's start-up noise filtered out of stderr.

TF 2.15's Linux wheel prints, at import and on every machine, `E ... Unable to register cuDNN/cuFFT/cuBLAS
factory` lines (tensorflow/tensorflow#62075) and oneDNN/TF-TRT notices; tf-agents imports the old `gym`, which
prints a notice too. They are not errors of the user's run. `rlmusic.cli.main` turns `ENABLED` on, so that
`quiet_import` filters those lines out of stderr while the module loads (any other line passes) and TensorFlow's
own logger shows errors only. Imported as a library (a notebook, a script), rlmusic leaves stderr, environment
variables and loggers alone: `quiet_import` is then a plain import.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile

ENABLED = False

_NOISE = ("Unable to register cuDNN factory", "Unable to register cuFFT factory",
          "Unable to register cuBLAS factory", "TF-TRT Warning", "oneDNN custom operations",
          "This TensorFlow binary is optimized", "To enable the following instructions", "could not find cuda drivers",
          "Gym has been unmaintained", "Please upgrade to Gymnasium", "See the migration guide at https://gymnasium")


def enable() -> None:
    """For the command line only: filter the notices and keep TensorFlow's C++ log to warnings and errors."""
    global ENABLED
    ENABLED = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_import(name: str):
    """Import module `name`; with ENABLED, the known start-up notices are filtered out of stderr meanwhile."""
    if name in sys.modules or not ENABLED:
        return importlib.import_module(name)
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # stderr replaced by something without a file descriptor
        return importlib.import_module(name)
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            module = importlib.import_module(name)
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not any(n in line for n in _NOISE):
                    sys.stderr.write(line)
    if name == "tensorflow":
        module.get_logger().setLevel("ERROR")
    return module

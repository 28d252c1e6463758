"""Import TensorFlow without its start-up noise.

TF 2.15's Linux wheel prints, at import and on every machine, `E ... Unable to register cuDNN/cuFFT/cuBLAS
factory` lines (tensorflow/tensorflow#62075) and oneDNN/TF-TRT notices. They are not errors of the user's run, so
they are filtered out of stderr while TensorFlow loads; any other line written then is passed through.
Modules of this package import TensorFlow as `from rlmusic._tf import tf`.
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_NOISE = ("Unable to register cuDNN factory", "Unable to register cuFFT factory",
          "Unable to register cuBLAS factory", "TF-TRT Warning", "oneDNN custom operations",
          "This TensorFlow binary is optimized", "To enable the following instructions", "could not find cuda drivers",
          # tf-agents imports the old `gym`, which prints a notice on import; we use Gymnasium.
          "Gym has been unmaintained", "Please upgrade to Gymnasium", "See the migration guide at https://gymnasium")


def quiet_import(name: str):
    """Import module `name` with the known start-up notices filtered out of stderr (other lines pass)."""
    import importlib

    if name in sys.modules:
        return sys.modules[name]
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
    return module


tf = quiet_import("tensorflow")
tf.get_logger().setLevel("ERROR")

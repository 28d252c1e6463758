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
          "This TensorFlow binary is optimized", "To enable the following instructions", "could not find cuda drivers")


def _import_quietly():
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # stderr replaced by something without a file descriptor
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            import tensorflow
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not any(n in line for n in _NOISE):
                    sys.stderr.write(line)
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


tf = _import_quietly()

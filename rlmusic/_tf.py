"""TensorFlow for the modules of this package: `from rlmusic._tf import tf`.

Imported quietly when the command line asked for it (rlmusic._quiet); a plain import otherwise.

On a machine (or a process pinned with taskset, or a container) with one CPU, TensorFlow sizes its inter-op
thread pool to one thread. A reward that runs TensorFlow itself (the `realness` discriminator, the `preference`
model) is called from inside the compiled collection loop, which holds that one thread: the reward's ops never get
one and the run hangs until the reward time limit. Two inter-op threads at least, set before any op runs, avoid it.
"""

import os

from rlmusic._quiet import quiet_import

tf = quiet_import("tensorflow")

MIN_INTER_OP_THREADS = 2


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


if _cpus() < MIN_INTER_OP_THREADS and tf.config.threading.get_inter_op_parallelism_threads() == 0:
    try:
        tf.config.threading.set_inter_op_parallelism_threads(MIN_INTER_OP_THREADS)
    except RuntimeError:  # TensorFlow already ran an op in this process: its pools are fixed
        pass

__all__ = ["tf", "quiet_import"]

"""TensorFlow for the modules of this package: `from rlmusic._tf import tf`.

Imported quietly when the command line asked for it (rlmusic._quiet); a plain import otherwise.
"""

from rlmusic._quiet import quiet_import

tf = quiet_import("tensorflow")

__all__ = ["tf", "quiet_import"]

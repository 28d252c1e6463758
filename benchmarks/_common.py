"""What every benchmark starts with: the repository on sys.path, a parser from the script's docstring, and the
hardware named once for its table (CPU model, cores, AVX-512 and AMX or not).

    from _common import hardware, parser   # in benchmarks/NAME.py, before any `rlmusic` import
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser whose description is the script's docstring (its first line, then the rest as help)."""
    first, _, rest = doc.strip().partition("\n")
    return argparse.ArgumentParser(description=first, epilog=rest.strip() or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def hardware() -> dict:
    """The machine a figure was measured on, as every results file records it."""
    from rlmusic.devices import cpu_flags, cpu_name

    flags = cpu_flags()
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "avx512": "avx512f" in flags, "amx": "amx_tile" in flags}


def hardware_line() -> str:
    """The hardware in one line, printed above a benchmark's table."""
    h = hardware()
    return (f"{h['cpu']}, {h['cores']} cores, {'with' if h['avx512'] else 'without'} AVX-512, "
            f"{'with' if h['amx'] else 'without'} AMX")

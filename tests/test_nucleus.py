"""benchmarks/nucleus.py: the same models at several top-p over several seeds, one table."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def nucleus(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "nucleus.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_one_column_per_model_and_top_p_over_the_seeds(tiny_run, data_dir, tmp_path):
    proc = nucleus("--checkpoints", tiny_run, "--top-p", 1.0, 1e-6, "--seeds", 0, 1, "--num", 4, "--data", data_dir,
                   "--json", tmp_path / "n.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    columns = json.loads((tmp_path / "n.json").read_text())
    assert list(columns) == ["corpus", "tiny, top-p 1", "tiny, top-p 1e-06"]
    assert all(len(c) == 2 for c in columns.values())  # one entry per seed
    # the smallest nucleus keeps only the likeliest character: greedy, so every tune of a seed is the same one
    assert [c["duplicate_tunes"] for c in columns["tiny, top-p 1e-06"]] == [0.75, 0.75]
    assert [c["duplicate_tunes"] for c in columns["tiny, top-p 1"]] == [0.0, 0.0]
    header = [line for line in proc.stdout.splitlines() if line.startswith("| metric")][-1]
    assert header.split("|")[1:-1] == [" metric ", " corpus ", " tiny, top-p 1 ", " tiny, top-p 1e-06 "]
    assert "kl_to_reference" not in proc.stdout  # not the truncated distribution's KL: left out
    assert sum(line.startswith("invalid (") and "mean over seeds" in line for line in proc.stdout.splitlines()) == 3


def test_top_p_out_of_range_is_refused(tmp_path):
    proc = nucleus("--top-p", 0, timeout=120)
    assert proc.returncode == 2 and "--top-p: each value must be in (0, 1]" in proc.stderr

"""benchmarks/reward_designs.py: presets x seeds from one pretrained run, one table; --resume-to continues copies."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_designs_table_with_runs_resumed_to_more_iterations(tiny_run, data_dir, tmp_path):
    out = tmp_path / "designs"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reward_designs.py"), "--presets", "tiny", "--seeds", "0",
         "--checkpoint", str(tiny_run), "--data", str(data_dir), "--num", "4", "--out", str(out),
         "--set", "ptx_coef=0", "--resume-to", "4", "--json", str(tmp_path / "d.json")],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = {d.name: [json.loads(line)["step"] for line in (d / "metrics.jsonl").read_text().splitlines()]
             for d in out.iterdir()}
    # the tiny preset's 3 iterations, and a copy continued from them to 4 (not trained again from the start)
    assert steps == {"tiny-seed0": [1, 2, 3], "tiny-seed0-to4": [1, 2, 3, 4]}
    results = json.loads((tmp_path / "d.json").read_text())
    assert list(results) == ["corpus", "pretrained", "tiny", "tiny@4"]
    assert all(len(results[k]) == 1 and 0 <= results[k][0]["valid_rate"] <= 1 for k in results)
    # the designs table is printed last, after each seed's own evaluate table
    header = [line for line in proc.stdout.splitlines() if line.startswith("| metric")][-1]
    assert header.split("|")[1:-1] == [" metric ", " corpus ", " pretrained ", " tiny ", " tiny@4 "]

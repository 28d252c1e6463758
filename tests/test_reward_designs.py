"""benchmarks/reward_designs.py: presets x seeds from one pretrained run, one table; --resume-to continues copies."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(monkeypatch):
    """benchmarks/reward_designs.py as a module, with benchmarks/ on sys.path as when it is run (for _common)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("reward_designs", ROOT / "benchmarks" / "reward_designs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def designs(*args, timeout=900):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reward_designs.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_designs_table_with_runs_resumed_to_more_iterations(tiny_run, data_dir, tmp_path):
    out = tmp_path / "designs"
    other = tmp_path / "other.yaml"  # a second design: the tiny preset under another name
    other.write_text((ROOT / "configs" / "finetune" / "tiny.yaml").read_text())
    proc = designs("--presets", "tiny", other, "--seeds", "0", "--checkpoint", tiny_run, "--data", data_dir,
                   "--num", 4, "--out", out, "--set", "ptx_coef=0", "--set", "rewards.tonic_start_end=0.5", "--set", "reward_targets.tonic_start_end=0.5",
                   "--set", "target_control=pi", "--resume-to", 4, "--resume-only", "tiny",
                   "--json", tmp_path / "d.json", "--trade-plot", tmp_path / "trade.png",
                   "--targets-plot", tmp_path / "targets.png")
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = {d.name: [json.loads(line)["step"] for line in (d / "metrics.jsonl").read_text().splitlines()]
             for d in out.iterdir()}
    # the tiny preset's 3 iterations, and a copy continued from them to 4 (not trained again from the start);
    # the other design is not continued (--resume-only)
    assert steps == {"tiny-seed0": [1, 2, 3], "tiny-seed0-to4": [1, 2, 3, 4], "other-seed0": [1, 2, 3]}
    results = json.loads((tmp_path / "d.json").read_text())
    assert list(results) == ["corpus", "pretrained", "tiny", "tiny@4", "other"]
    assert all(len(results[k]) == 1 and 0 <= results[k][0]["valid_rate"] <= 1 for k in results)
    # the designs table is printed last, after each seed's own evaluate table
    header = [line for line in proc.stdout.splitlines() if line.startswith("| metric")][-1]
    assert header.split("|")[1:-1] == [" metric ", " corpus ", " pretrained ", " tiny ", " tiny@4 ", " other "]
    assert (tmp_path / "trade.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # what limits the valid share, one line per column below the table: "none" only where every tune was valid
    limits = {line.split(")")[0][len("invalid ("):]: line.split(": ", 1)[1] for line in proc.stdout.splitlines()
              if line.startswith("invalid (") and "mean over seeds" in line}
    assert list(limits) == list(results)
    assert all((limits[k] == "none") == (results[k][0]["valid_rate"] == 1.0) for k in results)
    # one row of panels per design holding a target, drawn from its longest run (tiny's copy has 4 iterations)
    from PIL import Image

    with Image.open(tmp_path / "targets.png") as im:
        assert im.size[1] == round(2 * 2.6 * 90)
    weights = [json.loads(line).get("weights/tonic_start_end")
               for line in (out / "tiny-seed0-to4" / "metrics.jsonl").read_text().splitlines()]
    assert weights[0] == 0.5 and len(set(weights)) > 1  # logged, and adapted by the controller

    # a later call with one design adds the earlier call's columns (--with): the same pretrained tunes, so they
    # compare; its own run exists and is evaluated, not trained again. A table of other tunes (its pretrained
    # figure changed) is left out and named, after this call's own table is written.
    other_tunes = json.loads((tmp_path / "d.json").read_text())
    other_tunes["pretrained"][0]["valid_rate"] += 0.5
    (tmp_path / "e.json").write_text(json.dumps({"pretrained": other_tunes["pretrained"], "corpus":
                                                 other_tunes["corpus"], "elsewhere": other_tunes["tiny"]}))
    proc = designs("--presets", other, "--seeds", "0", "--checkpoint", tiny_run, "--data", data_dir, "--num", 4,
                   "--out", out, "--set", "ptx_coef=0", "--set", "rewards.tonic_start_end=0.5", "--set", "reward_targets.tonic_start_end=0.5",
                   "--set", "target_control=pi", "--with", tmp_path / "d.json", tmp_path / "e.json",
                   "--json", tmp_path / "d2.json")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1].startswith(f"error: --with {tmp_path / 'e.json'}: pretrained valid_rate of "
                                                   f"seed position 0")
    header = [line for line in proc.stdout.splitlines() if line.startswith("| metric")][-1]
    assert header.split("|")[1:-1] == [" metric ", " corpus ", " pretrained ", " tiny ", " tiny@4 ", " other "]
    assert json.loads((tmp_path / "d2.json").read_text())["tiny@4"] == results["tiny@4"]
    assert len((out / "other-seed0" / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_only_names_a_preset(tmp_path):
    proc = designs("--presets", "tiny", "--resume-to", 4, "--resume-only", "nope", "--out", tmp_path, timeout=120)
    assert proc.returncode == 2 and "--resume-only needs --resume-to and names among the presets' stems (tiny)" \
        in proc.stderr


def test_an_unreadable_earlier_table_ends_the_call_before_any_run(tmp_path):
    proc = designs("--presets", "tiny", "--with", tmp_path / "none.json", "--out", tmp_path / "d", timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: --with {tmp_path / 'none.json'}: cannot read it")
    assert not (tmp_path / "d").exists()


def columns(valid, notes=70.0, seeds=1):
    return [{"valid_rate": valid, "mean_notes": notes} for _ in range(seeds)]


@pytest.mark.parametrize("earlier,message", [
    # the same corpus and pretrained figures: its design columns join the table
    ({"corpus": columns(0.95), "pretrained": columns(0.85), "default": columns(0.9)}, None),
    # the pretrained model's tunes differ (another machine, --num or seed): the designs saw other tunes
    ({"corpus": columns(0.95), "pretrained": columns(0.86), "default": columns(0.9)},
     "pretrained valid_rate of seed position 0 is 0.86 there, 0.85 here"),
    # a figure missing there counts as different, not as equal
    ({"corpus": columns(0.95), "pretrained": [{"valid_rate": 0.85}], "default": columns(0.9)},
     "pretrained mean_notes of seed position 0 is None there, 70.0 here"),
    # three seeds there, one here
    ({"corpus": columns(0.95, seeds=3), "pretrained": columns(0.85, seeds=3), "default": columns(0.9, seeds=3)},
     "its corpus column has 3 seeds, this call's 1"),
])
def test_earlier_columns_join_only_when_measured_on_the_same_tunes(earlier, message, monkeypatch):
    designs_module = load_script(monkeypatch)
    ours = {"corpus": columns(0.95), "pretrained": columns(0.85)}
    if message is None:
        assert designs_module.comparable_columns("e.json", earlier, ours) == {"default": columns(0.9)}
    else:
        with pytest.raises(ValueError, match=re.escape(message)):
            designs_module.comparable_columns("e.json", earlier, ours)


def test_merge_joins_one_seed_calls_and_refuses_other_columns(tmp_path):
    """--merge: two one-seed --json files make one table of two seeds; a file without the corpus is an error."""
    def one_seed(valid):
        return {"corpus": [{"valid_rate": 0.95}], "pretrained": [{"valid_rate": 1.0}], "music": [{"valid_rate": valid}]}

    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(one_seed(0.9)))
    b.write_text(json.dumps(one_seed(1.0)))
    c.write_text(json.dumps({"pretrained": [{}], "music": [{}]}))  # no corpus column
    proc = designs("--merge", a, b, "--json", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert "| valid_rate | 0.950 +- 0.000 | 1.000 +- 0.000 | 0.950 +- 0.050 |" in proc.stdout
    assert [r["valid_rate"] for r in json.loads((tmp_path / "m.json").read_text())["music"]] == [0.9, 1.0]
    proc = designs("--merge", a, c)
    assert proc.returncode == 2 and "error: --merge" in proc.stderr and "no corpus column" in proc.stderr
    longer = one_seed(0.8)
    longer["music@120"] = [{"valid_rate": 0.7}]  # a column only one seed's call has: averaged over that seed
    c.write_text(json.dumps(longer))
    proc = designs("--merge", a, c)
    assert proc.returncode == 0 and "columns with fewer seeds: music@120: 1" in proc.stdout

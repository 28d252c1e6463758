"""benchmarks/preferences.py: the synthetic listener labels pairs through the rating folder's code, a reward model
is fitted per seed, then (--finetune) PPO on the learned reward and DPO on the pairs are run and measured."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def script(*args, timeout=900):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "preferences.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_listener_reward_model_then_ppo_and_dpo(tiny_run, data_dir, tmp_path):
    out = tmp_path / "prefs"
    first = script("--checkpoint", tiny_run, "--pairs", 24, "--seeds", 0, "--out", out, "--json", tmp_path / "p.json")
    assert first.returncode == 0, first.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "preferences.jsonl").read_text().splitlines()]
    # every pair labelled once, in the rating page's format (the tunes' text stored with the choice)
    assert sorted(x["pair"] for x in lines) == list(range(24))
    assert all(x["choice"] in ("a", "b", "none") and x["a"] and x["b"] for x in lines)
    result = json.loads((tmp_path / "p.json").read_text())
    assert result["pairs"] == 24 and sum(result["choices"].values()) == 24
    # the reward model's held-out agreement in each feature view (a tiny corpus may leave no held-out winner)
    assert set(result["views"]) == {"both", "network", "music"}
    assert all(r["heldout_accuracy"] is None or 0 <= r["heldout_accuracy"] <= 1 for v in result["views"].values()
               for r in v)
    from rlmusic.preference import MODEL_FILE

    assert (out / "rm-seed0" / MODEL_FILE).is_file()

    second = script("--finetune", "--checkpoint", tiny_run, "--seeds", 0, "--out", out, "--data", data_dir,
                    "--num", 4, "--json", tmp_path / "f.json", "--set", "iterations=2", "--set",
                    "tunes_per_iteration=4", "--set", "max_length=60", "--set", "ptx_coef=0")
    assert second.returncode == 0, second.stderr[-3000:]
    # both runs trained for the iterations asked
    for run in ("ppo-seed0", "dpo-seed0"):
        steps = [json.loads(x)["step"] for x in (out / run / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2], run
    columns = json.loads((tmp_path / "f.json").read_text())["columns"]
    assert list(columns) == ["corpus", "shipped", "ppo", "dpo"]
    for name in ("shipped", "ppo", "dpo"):
        col = columns[name][0]
        # the rule is the sum of its two rewards' means; every column is sampled under the mask
        assert col["rule"] == (col["rewards/cadences"] or 0) + (col["rewards/phrase_repeats"] or 0)
        assert col["constrain"] == "syntax" and col["kl_to_reference"] >= 0
    assert columns["shipped"][0]["kl_to_reference"] < 1e-6  # the reference itself
    assert "| rule |" in second.stdout


def test_finetune_before_the_labels_is_one_error_line(tiny_run, tmp_path):
    proc = script("--finetune", "--checkpoint", tiny_run, "--seeds", 0, "--out", tmp_path / "none")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "preferences.jsonl" in proc.stderr


def test_another_ppo_preset_runs_into_a_folder_of_its_own(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import preferences

    other = tmp_path / "guarded.yaml"
    assert preferences.run_folder(tmp_path, "ppo", preferences.PPO_PRESET, 1) == tmp_path / "ppo-seed1"
    assert preferences.run_folder(tmp_path, "ppo", other, 1) == tmp_path / "ppo-guarded-seed1"  # not the measured run
    assert preferences.run_folder(tmp_path, "dpo", other, 2) == tmp_path / "dpo-seed2"

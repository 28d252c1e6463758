"""A wheel holds what a user needs outside the repository: presets by name (and the shipped model)."""

import os
import subprocess
import sys

from conftest import DATA, REPO


def test_a_wheel_install_runs_presets_by_name(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("rlmusic-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import rlmusic; print(rlmusic.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=env, check=True).stdout
    assert where.startswith(str(target))  # the installed copy, not the repository's
    run = subprocess.run([sys.executable, "-m", "rlmusic", "pretrain", "--config", "tiny", "--data", str(DATA),
                          "--out", str(tmp_path / "run"), "--set", "train.steps=2", "--set", "train.eval_every=2",
                          "--set", "data.val_fraction=0.25"],
                         cwd=tmp_path, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "step-2").is_dir()
    assert "units: 64" in (tmp_path / "run" / "config.yaml").read_text()  # the tiny preset's model
    shipped = subprocess.run([sys.executable, "-m", "rlmusic", "sample", "--num", "1", "--max-length", "60"],
                             cwd=tmp_path, capture_output=True, text=True, env=env)
    assert shipped.returncode == 0, shipped.stderr[-2000:]
    assert f"using the shipped model rlmusic/pretrained/folk ({target}" in shipped.stderr
    assert shipped.stdout.startswith("X:1\n")

"""Faults a hostile but realistic user meets, run as the user runs them: one `error:` line, exit 2 (130 for Ctrl-C,
143 for SIGTERM), no traceback, and nothing lost or half-written."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY, cli, make_toy_run, set_args
from rlmusic.rundir import RunDir

TESTS = Path(__file__).parent


def one_error_line(err: str) -> str:
    """The one `error:` line of a failed command (and no traceback before it)."""
    assert "Traceback" not in err, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


# --- 1. a run folder has one owner ----------------------------------------------------------------------------

def test_a_second_run_into_a_locked_folder_is_refused_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    holder = RunDir(out)
    holder.lock("--out")  # another run, in this process: flock conflicts across open files all the same
    try:
        code, _, err = cli("pretrain", "--config", "tiny", "--out", out, *set_args(TINY), capsys=capsys)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the refused run wrote nothing
    finally:
        holder.unlock()
    line = one_error_line(err)
    assert code == 2 and f"pid {os.getpid()}" in line and "another run" in line
    assert not out.exists()  # the folder the first run made and left empty is gone with it


def test_a_run_killed_with_kill_9_leaves_no_stuck_lock(tmp_path):
    out = tmp_path / "run"
    code = ("import sys, time; sys.path.insert(0, %r); from rlmusic.rundir import RunDir; "
            "RunDir(%r).lock('--out'); print('locked', flush=True); time.sleep(600)") % (str(REPO), str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(Exception, match="another run"):
        RunDir(out).lock("--out")
    proc.kill()
    proc.wait()
    run = RunDir(out)
    run.lock("--out")  # the kernel released the dead run's lock
    run.unlock()


# --- 3. a failed re-run leaves the folder describing the run that happened ---------------------------------------

def test_a_failed_rerun_does_not_rewrite_config_yaml(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    toy = make_toy_run(tmp_path / "toy")
    out = tmp_path / "ft"
    common = ["--checkpoint", toy, "--config", "tiny", "--out", out, "--set", "ptx_coef=0"]
    assert cli("finetune", *common, "--set", "iterations=2", capsys=capsys)[0] == 0
    before = (out / "config.yaml").read_bytes(), (out / "vocab.json").read_bytes()
    code, _, err = cli("finetune", *common, "--set", "iterations=4", "--set", "learning_rate=0.5",
                       "--set", "rewards.toy_rewards:broken=1", capsys=capsys)
    assert code == 2 and "toy_rewards:broken" in one_error_line(err)
    assert ((out / "config.yaml").read_bytes(), (out / "vocab.json").read_bytes()) == before
    assert RunDir(out).checkpoint_steps()[-1] == 2


# --- 4. a full disk while writing WAV ---------------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("abc2midi"), reason="abc2midi is not installed")
def test_a_wav_cut_by_a_full_disk_is_not_left_and_the_error_names_it(tmp_path, capsys, monkeypatch):
    # timidity on a full disk: it writes what fits, says so, and still exits 0 (measured on a 300 kB tmpfs)
    fake = tmp_path / "bin" / "timidity"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nprintf 'RIFF\\377\\377\\0\\0WAVE' > \"$3\"\nhead -c 4000 /dev/zero >> \"$3\"\n"
                    "echo \"$3: No space left on device\"\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "tunes"
    code, _, err = cli("sample", "--checkpoint", make_toy_run(tmp_path / "toy"), "--num", "2", "--format", "wav",
                       "--max-length", "60", "--out", out, capsys=capsys)
    line = one_error_line(err)
    assert code == 2 and f"{out / 'tune_001.wav'}: cannot write (No space left on device)" in line
    assert not list(out.glob("*.wav")) and not list(out.glob(".*tmp*"))


def test_a_full_disk_names_the_file_not_a_temporary_name(tmp_path, monkeypatch):
    from rlmusic import files

    def full(fd, mode):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fdopen", full)
    with pytest.raises(OSError) as info:
        files.atomic_write_text(tmp_path / "config.yaml", "x: 1\n")
    assert info.value.filename == str(tmp_path / "config.yaml") and info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no temporary file left


WRITE_FAILURES = [
    # a full disk while TensorFlow writes a checkpoint: its message is long; the reason must not be cut off
    ("disk", "Failed to flush 1048576 bytes to file /runs/x/checkpoints/.tmp-step-abc/ckpt.data-00000-of-00001 "
             "while writing the checkpoint shard: the file system refused the write; No space left on device",
     "cannot write (No space left on device)"),
    # memory, which TensorFlow reports as the same error type as a full disk: say so, and what to lower
    ("oom", "OOM when allocating tensor with shape[64,128,100000] and type float",
     "out of memory at this size; lower train.batch_size"),
]


@pytest.mark.parametrize("kind,message,expected", WRITE_FAILURES)
def test_write_failures_say_why(tmp_path, kind, message, expected):
    from rlmusic._tf import tf
    from rlmusic.pretrain import OOM_KEYS
    from rlmusic.rundir import write_failure

    exc = tf.errors.ResourceExhaustedError(None, None, message)
    assert expected in str(write_failure(RunDir(tmp_path), exc, config_keys=OOM_KEYS))


# --- 5. reward plugins that exit or raise what is not an Exception ---------------------------------------------

@pytest.mark.parametrize("source,reward,expected", [
    # sys.exit(0) at import: the command would end with success and no output
    ("import sys\nsys.exit(0)\n", "exits_on_import:rule", "cannot import exits_on_import (it called sys.exit(0)"),
    # sys.exit(0) while scoring
    ("import sys\ndef rule(tunes, **k):\n    sys.exit(0)\n", "exits_scoring:rule", "called sys.exit(0)"),
    # KeyboardInterrupt raised by the plugin itself, no Ctrl-C pressed
    ("def rule(tunes, **k):\n    raise KeyboardInterrupt\n", "raises_kbi:rule", "raised KeyboardInterrupt"),
])
def test_evaluate_names_a_plugin_that_exits(tmp_path, capsys, monkeypatch, data_dir, source, reward, expected):
    (tmp_path / f"{reward.split(':')[0]}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = cli("evaluate", "--data", data_dir, "--rewards", reward, capsys=capsys)
    assert code == 2 and expected in one_error_line(err)


@pytest.mark.parametrize("reward,expected", [
    ("toy_rewards:exits", "called sys.exit(0)"),  # SystemExit inside fine-tuning's rollout
    ("toy_rewards:interrupts", "raised KeyboardInterrupt"),  # a KeyboardInterrupt no Ctrl-C sent
])
def test_finetune_names_a_plugin_that_exits(tmp_path, capsys, monkeypatch, reward, expected):
    monkeypatch.syspath_prepend(str(TESTS))
    code, _, err = cli("finetune", "--checkpoint", make_toy_run(tmp_path / "toy"), "--config", "tiny",
                       "--out", tmp_path / "ft", "--set", "ptx_coef=0", "--set", f"rewards={{{reward}: 1.0}}",
                       capsys=capsys)
    assert code == 2 and f"reward {reward}" in one_error_line(err) and expected in one_error_line(err)


# --- 5, 6. Ctrl-C and SIGTERM, sent to a real process ----------------------------------------------------------

def _signal_when_running(argv: list[str], ready: Path, sig: int, after: float = 2.0) -> tuple[int, str]:
    """Run the CLI in a child process; once `ready` exists (the run has started), wait `after` s and send `sig`."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO)]))
    # SIGHUP as a terminal leaves it (a suite started under nohup passes SIGHUP on ignored, and rlmusic keeps it so)
    proc = subprocess.Popen([sys.executable, "-m", "rlmusic", *map(str, argv)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(after)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                           (signal.SIGHUP, 129, "terminated (SIGHUP)")])  # the terminal closed
def test_a_signal_while_a_plugin_hangs_in_finetune(tmp_path, sig, code, word):
    out = tmp_path / "ft"
    got, err = _signal_when_running(["finetune", "--checkpoint", make_toy_run(tmp_path / "toy"), "--config", "tiny",
                                     "--out", out, "--set", "ptx_coef=0", "--set", "rewards={toy_rewards:hangs: 1.0}"],
                                    out / "config.yaml", sig)
    assert got == code and one_error_line(err).startswith(f"error: {word} at iteration 0")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143),
                                      (signal.SIGHUP, 129)])  # an SSH session dropped: the work is kept too
def test_sigterm_saves_pretraining_where_it_stopped(tmp_path, sig, code):
    out = tmp_path / "pt"
    sets = set_args([*TINY, "train.steps=100000", "train.eval_every=100000", "train.log_every=1000"])
    got, err = _signal_when_running(["pretrain", "--config", "tiny", "--out", out, *sets], out / "config.yaml",
                                    sig, after=3.0)
    line = one_error_line(err)
    assert got == code and line.startswith(f"error: terminated ({sig.name}) at step ")
    step = int(line.split("at step ")[1].split(";")[0])
    assert step > 0 and RunDir(out).checkpoint_steps() == [step]  # nothing done was lost
    assert f"checkpoint (step {step})" in line


def test_sigterm_saves_finetuning_where_it_stopped(tmp_path):
    out = tmp_path / "ft"
    got, err = _signal_when_running(["finetune", "--checkpoint", make_toy_run(tmp_path / "toy"), "--config", "tiny",
                                     "--out", out, "--set", "ptx_coef=0", "--set", "iterations=1000",
                                     "--set", "checkpoint_every=1000", "--set", "rewards={toy_rewards:slow: 1.0}"],
                                    out / "metrics.jsonl", signal.SIGTERM, after=1.0)
    line = one_error_line(err)
    assert got == 143 and line.startswith("error: terminated (SIGTERM) at iteration ")
    done = int(line.split("at iteration ")[1].split(";")[0])
    assert done >= 1 and RunDir(out).checkpoint_steps() == [done]


# --- 7. out-of-range and broken settings --------------------------------------------------------------------

def test_an_empty_vocabulary_file(tmp_path, capsys):
    run = make_toy_run(tmp_path / "toy")
    (run / "vocab.json").write_text('{"chars": []}')
    code, _, err = cli("sample", "--checkpoint", run, "--num", "1", capsys=capsys)
    assert code == 2 and "vocab.json: corrupt vocabulary file (it holds 0 characters" in one_error_line(err)


def test_tf_config_with_a_task_index_beyond_the_cluster(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]},
                                                "task": {"type": "worker", "index": 3}}))
    code, _, err = cli("pretrain", "--config", "tiny", "--out", tmp_path / "pt", *set_args(TINY), capsys=capsys)
    assert code == 2 and "TF_CONFIG does not describe this worker" in one_error_line(err)


def test_a_wandb_mode_that_does_not_exist(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "bogus")
    code, _, err = cli("pretrain", "--config", "tiny", "--out", tmp_path / "pt", "--wandb", *set_args(TINY),
                       capsys=capsys)
    assert code == 2 and "WANDB_MODE=bogus: not a Weights & Biases mode" in one_error_line(err)


def test_a_folder_named_like_a_preset_is_not_taken_for_a_config_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()  # a run called tiny, beside which the user runs --config tiny
    code, _, err = cli("pretrain", "--config", "tiny", "--out", tmp_path / "pt", *set_args(TINY), capsys=capsys)
    assert code == 0, err


# --- 8. the vocabulary belongs to its weights ----------------------------------------------------------------

def test_two_swapped_characters_in_vocab_json_are_detected(tmp_path, capsys):
    run = make_toy_run(tmp_path / "toy")
    chars = json.loads((run / "vocab.json").read_text())["chars"]
    chars[5], chars[6] = chars[6], chars[5]  # same size, same characters, other order: the embedding rows lie
    (run / "vocab.json").write_text(json.dumps({"chars": chars}))
    code, _, err = cli("sample", "--checkpoint", run, "--num", "1", capsys=capsys)
    assert code == 2 and "vocab.json: not the vocabulary the weights of checkpoints/step-0" in one_error_line(err)


def test_the_shipped_model_carries_its_fingerprint():
    from rlmusic.rundir import shipped_model

    run = RunDir(shipped_model())
    assert (run.checkpoint_root / f"step-{run.latest_step()}" / "vocab.sha256").exists()
    run.check_fingerprint(run.latest_step())


# --- 9. messages --------------------------------------------------------------------------------------------

def test_a_tune_too_long_is_refused_as_too_long(tmp_path, capsys):
    src = tmp_path / "long.abc"
    src.write_text("X:1\nT:long\nM:4/4\nL:1/8\nK:D\n|:" + "DEFG ABcd|" * 500 + ":|\n")
    code, _, err = cli("evaluate", "--data", src, capsys=capsys)
    assert code == 2 and "1 longer than the limit of 4,000 characters" in one_error_line(err)

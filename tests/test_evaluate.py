"""`python -m rlmusic evaluate`: metric definitions on hand-written tunes, and the command end to end."""

import json

import pytest

from conftest import TINY, cli, set_args
from rlmusic.evaluate import (METRIC_KEYS, invalid_reasons, pitch_class_entropy, reasons_line, scale_consistency,
                              tune_metrics)

H = "X:1\nT:t\nM:4/4\nL:1/8\n"


def test_metrics_on_hand_written_tunes():
    tunes = [
        H + "K:D\nDEFG ABcd|dcBA GFED|",  # a D major scale up and down: starts and ends on D
        H + "K:C\nAAAAA c2|^c4 B4|",      # five A in a row; ^c out of key; ends on B, not the tonic
    ]
    m = tune_metrics(tunes, use_abc2midi=False)
    assert m["valid_rate"] == 1.0 and m["valid_check"] == "scanner"
    assert m["notes_not_in_key"] == pytest.approx(1 / 24)            # 16 + 8 notes, one out of key
    assert m["notes_excessively_repeated"] == pytest.approx(5 / 24)  # the run of five A
    assert m["starts_with_tonic"] == 0.5 and m["ends_with_tonic"] == 0.5
    assert m["unique_max_note"] == 0.5  # the scale's top d appears twice; the second tune's ^c once
    assert m["autocorrelation_lag1"] > 0.5  # scales are smooth
    assert set(METRIC_KEYS) <= set(m)


@pytest.mark.parametrize("problems, expected", [
    # every tune valid: no reasons
    ([[], []], {}),
    # only the first problem of a tune counts; the share is of all tunes, valid ones included
    ([["Could not find note to be tied", "Malformed note"], [], [], []], {"Could not find note to be tied": 0.25}),
    # numbers become N, so one kind of message with different numbers is counted once; commonest first
    ([["Unrecognized character: 0"], ["Unrecognized character: 93"], ["nested tuples"], []],
     {"Unrecognized character: N": 0.5, "nested tuples": 0.25}),
    # a missing header comes first (check_tunes puts header problems before abc2midi's)
    ([["missing M: header", "No valid K: field"]], {"missing M: header": 1.0}),
])
def test_invalid_reasons(problems, expected):
    reasons = invalid_reasons(problems)
    assert reasons == pytest.approx(expected) and list(reasons) == list(expected)


def test_invalid_reasons_of_hand_written_tunes_and_their_line():
    tunes = [
        H + "K:D\nDEFG ABcd|dcBA GFED|",  # valid
        "X:1\nT:t\nL:1/8\nK:D\nDEFG|",  # no M: header
        "X:1\nT:t\nL:1/8\nK:D\nDEFG|",  # the same fault: one kind, 2 of 4 tunes
        H + "K:D\nDEFG ABcd|dcBA GFED|",
    ]
    m = tune_metrics(tunes, use_abc2midi=False)
    assert m["valid_rate"] == 0.5 and m["invalid_reasons"] == {"missing M: header": 0.5}
    assert reasons_line({"a": 0.25, "b": 0.125, "c": 0.1}, top=2) == "0.250 a; 0.125 b"
    assert reasons_line({}) == "none"


def test_pitch_class_entropy_and_scale_consistency():
    assert pitch_class_entropy([60, 62, 64, 65]) == pytest.approx(2.0)  # four equally likely classes
    assert pitch_class_entropy([60, 72]) == 0.0
    assert scale_consistency([60, 62, 64, 65, 67, 69, 71]) == 1.0
    assert scale_consistency([60, 61, 62, 63]) == 0.75  # no major/minor scale holds all four


def test_evaluate_cli_end_to_end(tiny_run, data_dir, tmp_path, capsys):
    out = tmp_path / "m.json"
    code, stdout, _ = cli("evaluate", "--checkpoint", tiny_run, "--reference", tiny_run, "--data", data_dir,
                          "--num", 6, "--max-length", 120, "--json", out, "--plots", tmp_path / "h.png",
                          capsys=capsys)
    assert code == 0
    m = json.loads(out.read_text())
    for k in METRIC_KEYS:
        if m[k] is not None and not k.startswith(("autocorrelation", "pitch_class", "bar_patterns")):
            assert 0.0 <= m[k] <= 1.0, k
    assert m["kl_to_reference"] == pytest.approx(0.0, abs=1e-6)  # a model against itself
    assert 0 < m["nll_bits_per_char"] < 8
    assert m["corpus"]["valid_rate"] >= 0.99  # the hand-written tunes are valid
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| metric | corpus | " in stdout


def test_kl_to_a_different_model_is_positive(tiny_run, data_dir, tmp_path, capsys):
    other = tmp_path / "other"
    cli("pretrain", "--data", data_dir, "--out", other, *set_args(TINY + ["train.seed=5", "train.steps=3"]))
    code, _, _ = cli("evaluate", "--checkpoint", tiny_run, "--reference", other, "--num", 4, "--max-length", 80,
                     "--json", tmp_path / "m.json", capsys=capsys)
    assert code == 0
    assert json.loads((tmp_path / "m.json").read_text())["kl_to_reference"] > 1e-5  # tiny models are near uniform: small but not zero
    # several checkpoints: one column each (the before/after table), each with its KL to the reference
    code, stdout, _ = cli("evaluate", "--checkpoint", other, tiny_run, "--reference", other, "--num", 4,
                          "--max-length", 80, "--json", tmp_path / "both.json", capsys=capsys)
    both = json.loads((tmp_path / "both.json").read_text())
    assert code == 0 and "| metric | other | tiny |" in stdout
    assert both["other"]["kl_to_reference"] == pytest.approx(0.0, abs=1e-6)
    assert both["tiny"]["kl_to_reference"] > 1e-5


def test_top_k_and_top_p_reach_the_sampler(tiny_run, data_dir, tmp_path, capsys):
    # top-k 1 is greedy: every tune the same, so 3 of 4 duplicate an earlier one; at top-k 0 a tiny model's
    # near-uniform tunes never repeat (unmasked: under the grammar's mask, 60 characters leave a tiny model little
    # but the shortest close of a header, which two tunes may share)
    dup = {}
    for k in (0, 1):
        code, _, _ = cli("evaluate", "--checkpoint", tiny_run, "--data", data_dir, "--num", 4, "--max-length", 60,
                         "--top-k", k, "--json", tmp_path / f"k{k}.json", "--constrain", "none", capsys=capsys)
        assert code == 0
        dup[k] = json.loads((tmp_path / f"k{k}.json").read_text())["duplicate_tunes"]
    assert dup == {0: 0.0, 1: 0.75}
    # a nucleus of the smallest mass keeps only the likeliest character: greedy again
    code, _, _ = cli("evaluate", "--checkpoint", tiny_run, "--data", data_dir, "--num", 4, "--max-length", 60,
                     "--top-p", 1e-6, "--json", tmp_path / "p.json", "--constrain", "none", capsys=capsys)
    assert code == 0 and json.loads((tmp_path / "p.json").read_text())["duplicate_tunes"] == 0.75


def test_corpus_only(data_dir, tmp_path, capsys):
    code, stdout, _ = cli("evaluate", "--data", data_dir, "--json", tmp_path / "c.json", capsys=capsys)
    # 8 test tunes: 4 are the real reference, the other 4 the baseline column judged against them
    c = json.loads((tmp_path / "c.json").read_text())
    assert code == 0 and c["tunes"] == 4 and c["exact_copies"] == 0.0


def test_data_the_model_cannot_read_gives_no_nll_not_zero(tiny_run, tmp_path, capsys):
    (tmp_path / "greek.abc").write_text("".join(f"X:{i}\nT:Ωδή\nM:4/4\nK:C\nCDEF|GABc|\n\n" for i in range(1, 9)),
                                        encoding="utf-8")
    code, _, err = cli("evaluate", "--checkpoint", tiny_run, "--data", tmp_path / "greek.abc", "--num", 4,
                       "--max-length", 60, "--json", tmp_path / "m.json", capsys=capsys)
    assert code == 0 and "nll_bits_per_char not measured: every --data tune holds characters outside" in err
    assert json.loads((tmp_path / "m.json").read_text())["nll_bits_per_char"] is None


@pytest.mark.parametrize("args,message", [
    # (args, the error line's text); {d} the test corpus, {t} a temp folder, {r} a tiny run
    (["--data", "{d}", "--reference", "{d}"], "--reference needs --checkpoint"),
    # a folder where a file is wanted: refused before any sampling
    (["--data", "{d}", "--json", "{t}"], "--json {t}: is a folder; give a file name"),
    (["--checkpoint", "{r}", "--plots", "{t}"], "--plots {t}: is a folder"),
    (["--num", "0", "--data", "{d}"], "argument --num: expected a number >= 1, got 0"),
    (["--top-p", "0", "--data", "{d}"], "argument --top-p: expected a number > 0 and <= 1, got 0.0"),
])
def test_evaluate_bad_inputs(data_dir, tiny_run, tmp_path, capsys, args, message):
    fill = dict(d=data_dir, t=tmp_path, r=tiny_run)
    code, _, err = cli("evaluate", *[a.format(**fill) for a in args], capsys=capsys)
    assert code == 2 and message.format(**fill) in err, err
    assert len([ln for ln in err.split("\n") if ln.startswith("error:")]) == 1


def test_rewards_command_lists_builtins(capsys):
    code, out, _ = cli("rewards", capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert any(ln.startswith("in_key ") and "built-in" in ln for ln in lines)
    assert len(lines) >= 15


def test_kl_is_the_one_fine_tuning_controls():
    """evaluate's KL of sampled tunes equals the full KL at the states fine-tuning collects them in (the primer
    read from a zero state, then the tune): the number the KL controller holds to kl_target. Scored back to back
    after a blank line instead, the context differs and so does the figure."""
    import numpy as np

    from rlmusic._tf import tf
    from rlmusic.evaluate import kl_to_reference
    from rlmusic.model import ModelConfig, build_model
    from rlmusic.policy import CharPolicyNetwork
    from rlmusic.vocab import Vocab
    from tf_agents.trajectories import time_step as ts

    vocab = Vocab(sorted(set("\nX:1T:tM4/LK:DEFGABcd|2 ")))
    tf.keras.utils.set_random_seed(0)
    model, reference = (build_model(len(vocab), ModelConfig(embedding_dim=6, units=12)) for _ in range(2))
    for m in (model, reference):  # far from uniform, so the two disagree by a KL well above round-off
        m(tf.zeros([1, 1], tf.int32))
        m.head.kernel.assign(tf.random.normal(m.head.kernel.shape, stddev=3.0))
    tunes = ["X:1\nT:t\nK:D\nDEFG|", "X:1\nK:D\nABcd|dcBA|A4|"]
    nets = [CharPolicyNetwork(m, vocab.encode("X:1")) for m in (model, reference)]
    total = count = 0.0
    for tune in tunes:
        obs = np.array([vocab.encode(tune[3:] + "\n")], np.int32)  # from the primer's last char: the first observation
        step_type = np.full(obs.shape, ts.StepType.MID, np.int32)
        step_type[0, 0] = ts.StepType.FIRST
        lp, lq = (tf.nn.log_softmax(net.logits(tf.constant(obs), tf.constant(step_type),
                                               net.model.initial_state(1))[0], -1) for net in nets)
        total += float(tf.reduce_sum(tf.exp(lp) * (lp - lq)))
        count += obs.shape[1]
    assert kl_to_reference(model, reference, vocab, tunes) == pytest.approx(total / count, rel=1e-4)
    with pytest.raises(ValueError, match="primer"):
        kl_to_reference(model, reference, vocab, ["T:no primer\n"])


def test_the_sampling_mode_is_named_in_the_table_and_json(tiny_run, tmp_path, capsys):
    for mode in ("syntax", "none"):
        code, stdout, _ = cli("evaluate", "--checkpoint", tiny_run, "--num", 4, "--max-length", 80, "--constrain", mode,
                              "--checker", "scanner", "--json", tmp_path / f"{mode}.json", capsys=capsys)
        metrics = json.loads((tmp_path / f"{mode}.json").read_text())
        assert code == 0 and metrics["constrain"] == mode and f"| constrain | {mode} |" in stdout
    # under the mask every tune is valid by the grammar's check; a tiny untrained model's raw tunes are not
    assert json.loads((tmp_path / "syntax.json").read_text())["valid_rate"] == 1.0
    assert json.loads((tmp_path / "none.json").read_text())["valid_rate"] < 1.0

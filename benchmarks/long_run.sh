#!/usr/bin/env bash
# A long pretraining run in stretches that each end with a commit, so no stretch of work is lost with a session.
#
#   bash benchmarks/long_run.sh CONFIG OUT MINUTES
#   bash benchmarks/long_run.sh folk_transposed runs/folk_transposed 150     # in the background: nohup ... &
#
# Each call resumes OUT (pretrain resumes by itself), trains for at most MINUTES, then stops it with SIGTERM:
# pretrain finishes its step, saves a checkpoint there and exits 143 (rlmusic/interrupts.py). The run folder's
# config, vocabulary, metrics and newest checkpoint (weights and optimizer state: what resuming needs) are then
# copied to benchmarks/long_runs/NAME/ and committed, and the next call resumes from that copy if OUT is gone
# (a fresh machine).
set -euo pipefail
config=$1 out=$2 minutes=$3
name=$(basename "$out")
keep="benchmarks/long_runs/$name"
cd "$(dirname "$0")/.."
if [ ! -d "$out" ] && [ -d "$keep" ]; then  # a fresh machine: start from the committed stretch
  mkdir -p "$(dirname "$out")" && cp -r "$keep" "$out"
fi
status=0
timeout --signal=TERM "${minutes}m" .venv/bin/python -m rlmusic pretrain --config "$config" --out "$out" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$status" -ne 143 ]; then
  # a crash (seen once in 12 SIGTERMs: a glibc abort) still leaves the checkpoints of the evaluation steps
  echo "warning: pretrain ended with status $status; committing its newest complete checkpoint" >&2
fi
step=$(ls "$out/checkpoints" 2>/dev/null | sed -n 's/^step-//p' | sort -n | tail -1)
if [ -z "$step" ]; then
  echo "error: $out has no checkpoint yet; nothing committed" >&2
  exit 1
fi
rm -rf "$keep.tmp" && mkdir -p "$keep.tmp/checkpoints"
cp "$out"/config.yaml "$out"/vocab.json "$out"/corpus.json "$out"/metrics.jsonl "$keep.tmp/"
cp -r "$out/checkpoints/step-$step" "$keep.tmp/checkpoints/"
rm -rf "$keep" && mv "$keep.tmp" "$keep"
git add "$keep"
if git diff --cached --quiet -- "$keep"; then
  echo "$keep already holds step $step: nothing to commit"
else
  git commit -q -m "long run $name: stretch to step $step (benchmarks/long_run.sh $config $out $minutes)" -- "$keep"
  echo "committed $keep at step $step"
fi

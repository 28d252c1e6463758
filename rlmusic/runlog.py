"""Where training numbers go: metrics.jsonl (always), TensorBoard (always), Weights & Biases (with --wandb).

W&B honours WANDB_MODE: `offline` writes the run locally (tests use it), `disabled` turns it off.
"""

from __future__ import annotations

import os
import sys
import weakref
from pathlib import Path

from rlmusic._tf import tf
from tqdm.auto import tqdm

from rlmusic import config as config_lib
from rlmusic.errors import UserError
from rlmusic.files import atomic_write_bytes
from rlmusic.plots import figure_png, new_figure  # noqa: F401 (re-exported)
from rlmusic.rundir import RunDir


_BARS: "weakref.WeakSet[tqdm]" = weakref.WeakSet()


def progress(**kwargs) -> tqdm:
    """A progress bar on stderr with rate and ETA; `mininterval` keeps it cheap in tight loops."""
    bar = tqdm(file=sys.stderr, dynamic_ncols=True, mininterval=0.5, **kwargs)
    _BARS.add(bar)
    return bar


def close_bars() -> None:
    """Close the bars still open (a run stopped by an error): each ends its line, so an error message that
    follows is not glued to the end of a bar."""
    for bar in list(_BARS):
        bar.close()
    _BARS.clear()


class NullLogger:
    """A logger that writes nothing: for the processes of a multi-worker run other than the chief."""

    def log(self, row: dict) -> None:
        pass

    def sample_table(self, model, vocab, step: int) -> None:
        pass

    def tune_table(self, step: int, finished: list[dict], mix) -> None:
        pass

    def close(self) -> None:
        pass


WANDB_MODES = ("online", "offline", "dryrun", "disabled", "run", "shared")  # what wandb.init accepts


class RunLogger:
    def __init__(self, run: RunDir, cfg, use_wandb: bool = False, project: str = "rlmusic", kind: str = "run",
                 sample_tunes: int = 4):
        self.run = run
        self.writer = tf.summary.create_file_writer(str(run.path / "tb"))
        self.sample_tunes = sample_tunes
        self._sampler = None
        self.wandb = None
        if use_wandb:
            mode = os.environ.get("WANDB_MODE", "")
            if mode and mode not in WANDB_MODES:
                self.writer.close()
                raise UserError(f"WANDB_MODE={mode}: not a Weights & Biases mode (one of {', '.join(WANDB_MODES)})")
            import wandb

            try:
                self.wandb = wandb.init(project=project, dir=str(run.path), config=config_lib.to_dict(cfg),
                                        job_type=kind, name=f"{kind}-{run.path.name}", reinit=True)
            except wandb.errors.UsageError as exc:
                self.writer.close()
                raise UserError(f"--wandb: Weights & Biases is not set up ({str(exc).splitlines()[0]}); run "
                                "`wandb login`, or set WANDB_MODE=offline to log the run locally") from exc

    def log(self, row: dict) -> None:
        """One row: appended to metrics.jsonl and written as scalars (keys other than `step`)."""
        self.run.append_metrics(row)
        step = int(row["step"])
        with self.writer.as_default(step=step):
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    tf.summary.scalar(k, v)
        self.writer.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if k != "step"}, step=step)

    def sample_table(self, model, vocab, step: int) -> None:
        """A W&B table of a few tunes sampled from the model as it is now (only with --wandb)."""
        if self.wandb is None:
            return
        import wandb

        from rlmusic.sample import Sampler

        if self._sampler is None:
            self._sampler = Sampler(model, vocab)
        tunes = self._sampler.generate(self.sample_tunes, max_length=600, seed=step)
        table = wandb.Table(columns=["step", "tune", "hit_length_limit"])
        for t in tunes:
            table.add_data(step, t.text, t.hit_limit)
        self.wandb.log({"samples": table}, step=step)

    def tune_table(self, step: int, finished: list[dict], mix) -> None:
        """A W&B table of the tunes the policy wrote in one iteration, with each reward's score (with --wandb)."""
        if self.wandb is None or not finished:
            return
        import wandb

        names = mix.names
        table = wandb.Table(columns=["step", "tune", "reward", *names])
        for info in finished:
            scores = info["rewards"]
            table.add_data(step, info["tune"], mix.total(scores), *(scores[n] for n in names))
        self.wandb.log({"tunes": table}, step=step)

    def close(self) -> None:
        self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


CURVES = ("reward", "valid_rate", "kl", "chars_per_tune")


def plot_curves(run: RunDir, name: str = "curves.png") -> Path:
    """The run's curves from metrics.jsonl as one PNG: total reward, valid rate, KL per char, tune length, and
    every reward's mean (rewards/<name>) in the last panel."""
    rows = run.read_metrics()
    fig = new_figure((4 * (len(CURVES) + 1), 3.4))
    axes = fig.subplots(1, len(CURVES) + 1)
    for ax, key in zip(axes, CURVES):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points))
        ax.set(title=key, xlabel="iteration")
    for key in sorted({k for r in rows for k in r if k.startswith("rewards/")}):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            axes[-1].plot(*zip(*points), label=key.split("/", 1)[1])
    axes[-1].set(title="rewards (mean score)", xlabel="iteration", ylim=(-0.05, 1.05))
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    path = run.path / name
    atomic_write_bytes(path, figure_png(fig, dpi=100))
    return path



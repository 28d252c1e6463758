"""Where training numbers go: metrics.jsonl (always), TensorBoard (always), Weights & Biases (with --wandb).

W&B honours WANDB_MODE: `offline` writes the run locally (tests use it), `disabled` turns it off.
"""

from __future__ import annotations

import sys

from rlmusic._tf import tf
from tqdm.auto import tqdm

from rlmusic import config as config_lib
from rlmusic.rundir import RunDir


def progress(**kwargs) -> tqdm:
    """A progress bar on stderr with rate and ETA; `mininterval` keeps it cheap in tight loops."""
    return tqdm(file=sys.stderr, dynamic_ncols=True, mininterval=0.5, **kwargs)


class RunLogger:
    def __init__(self, run: RunDir, cfg, use_wandb: bool = False, project: str = "rlmusic", kind: str = "run",
                 sample_tunes: int = 4):
        self.run = run
        self.writer = tf.summary.create_file_writer(str(run.path / "tb"))
        self.sample_tunes = sample_tunes
        self._sampler = None
        self.wandb = None
        if use_wandb:
            import wandb

            self.wandb = wandb.init(project=project, dir=str(run.path), config=config_lib.to_dict(cfg),
                                    job_type=kind, name=f"{kind}-{run.path.name}", reinit=True)

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

    def close(self) -> None:
        self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None

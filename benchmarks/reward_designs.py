"""Compare reward designs fairly: K fine-tuning presets x S seeds from one pretrained run, one table.

    python benchmarks/reward_designs.py --presets default sequence_tutor [--seeds 0 1 2] [--checkpoint pretrained]
        [--data oneills1850 ryansMammoth airdsAirs essenFolksong] [--num 200] [--out runs/designs] [--set KEY=VALUE]

Each (preset, seed) is a `python -m rlmusic finetune --config PRESET --set seed=S` run (resumed if it exists),
then `evaluate` samples `--num` tunes from it (seed S) against the same real reference tunes, as the run was
fine-tuned (its `constrain`: under the grammar's mask or not). The pretrained column is sampled under the mask (as
`sample` draws by default); a second one, `pretrained, none`, without it when a design samples without. The table gives,
per metric, the mean +- standard deviation over the seeds of the corpus (each seed's evaluate draws its own
real tunes), the pretrained model and each preset, so a difference between designs can be read against the
seed-to-seed spread. `--json FILE` writes every run's
metrics; `--plot FILE.png` draws each design's training curves (the scanner's valid share, length, KL,
beta), the mean over its seeds with their range as a band. `--resume-to N` also continues a copy of every run
(`OUT/PRESET-seedS-toN`) to N iterations and evaluates it beside the run it continues, as the column
`PRESET@N`: a design that holds its gains when trained longer, or collapses late (`--resume-only STEM ...`:
only those presets). `--trade-plot FILE.png` draws form against validity per column (two-strain tunes and tunes
with repeat signs against the valid share, mean +- std), the corpus's form +- 0.05 as a band. `--targets-plot
FILE.png` draws, for every reward a preset holds at a target, its mean per iteration against the target and its
weight (the longest run of each seed). `--with EARLIER.json ...` adds the design columns of an earlier call's
`--json` (runs since deleted, or measured in another session): only if its corpus and pretrained columns are
this call's own, figure for figure (the same seeds, --num, data, machine and TensorFlow thread count: another
thread count samples other tunes); else this call's table is written without them and an error says which
figure differs. `--merge A.json B.json` prints one table of calls made one seed each (run in parallel, one per core).
Below the table, per column, the commonest first problems of the invalid tunes (evaluate's
`invalid_reasons`, averaged over the seeds): what limits the valid share.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

SHOWN = ("valid_rate", "repeat_sign_tunes", "two_strain_tunes", "aabb_tunes", "notes_not_in_key",
         "notes_excessively_repeated", "starts_with_tonic", "ends_with_tonic", "leaps_resolved",
         "notes_in_repeated_motif", "discriminator_text", "discriminator_features", "feature_overlap",
         "copies_4_bars", "kl_to_reference", "mean_notes")


def run_constrain(run: Path) -> str:
    """How a run is sampled in the table: as it was fine-tuned (its config's `constrain`); the pretrained run, whose
    config has none, as `sample` and `evaluate` draw by default (under the grammar's mask)."""
    import yaml

    return (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("constrain", "syntax")


def evaluate_runs(runs: list[Path], constrains: list[str], reference_run: Path | None, data: list[str], num: int,
                  seed: int, top_p: float = 1.0) -> tuple[dict, list[dict]]:
    """The corpus column and one column per run, in the order given, each run sampled with its own `constrain`
    (one `evaluate` call per mode; the corpus column, drawn with the same seed, is the same in each)."""
    from rlmusic import evaluate, validity

    corpus, by_run = {}, {}
    for mode in dict.fromkeys(constrains):
        picked = [i for i, c in enumerate(constrains) if c == mode]
        opts = evaluate.EvaluateConfig(data=data, checkpoint=[str(runs[i]) for i in picked], num=num, seed=seed,
                                       top_p=top_p, constrain=mode,
                                       reference=str(reference_run) if reference_run else None,
                                       checker=validity.resolve_checker("auto"))
        got = evaluate.run(opts, log=lambda m: print(m, file=sys.stderr))
        corpus = got.pop("corpus", corpus)
        by_run.update(zip(picked, got.values()))  # evaluate's columns follow its checkpoints' order
    return corpus, [by_run[i] for i in range(len(runs))]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--presets", nargs="+", help="finetune presets (names or YAML files)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="instead of running: one table of the --json files of calls made one seed each (seeds "
                         "run in parallel), their columns joined seed after seed")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--checkpoint", default="pretrained")
    ap.add_argument("--data", nargs="+", default=["oneills1850", "ryansMammoth", "airdsAirs", "essenFolksong"])
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--out", default="runs/designs")
    ap.add_argument("--json")
    ap.add_argument("--set", action="append", default=[], help="an override for every run")
    ap.add_argument("--plot", help="PNG of the training curves per design, mean and range over the seeds")
    ap.add_argument("--resume-to", type=int, metavar="N",
                    help="also continue a copy of every run to N iterations and evaluate it beside the run")
    ap.add_argument("--resume-only", nargs="+", metavar="STEM",
                    help="with --resume-to: continue only these presets (file stems, e.g. form_soft)")
    ap.add_argument("--trade-plot", help="PNG of form against validity per column, mean +- std over the seeds")
    ap.add_argument("--targets-plot", help="PNG of each reward_targets reward per iteration, its target and weight")
    ap.add_argument("--with", dest="earlier", nargs="+", default=[], metavar="JSON",
                    help="also the design columns of earlier --json files, if their corpus and pretrained columns "
                         "are this call's (same seeds, --num, data, machine, threads)")
    args = ap.parse_args()
    if args.merge:
        return print_table(merge_seeds(args.merge), args)
    if not args.presets:
        ap.error("--presets (or --merge) is required")
    stems = [Path(p).stem for p in args.presets]
    if args.resume_only and (not args.resume_to or set(args.resume_only) - set(stems)):
        ap.error(f"--resume-only needs --resume-to and names among the presets' stems ({', '.join(stems)})")

    earlier = read_earlier(args.earlier)

    from rlmusic.rundir import shipped_model

    pretrained = shipped_model() if args.checkpoint == "pretrained" else Path(args.checkpoint)
    results: dict[str, list[dict]] = {}
    base: list[dict] = []
    corpus: list[dict] = []
    run_dirs: dict[str, list[Path]] = {}
    longest: dict[str, list[Path]] = {}  # each design's longest runs (the continued copy, if any): --targets-plot
    for seed in args.seeds:
        runs, labels = [], []
        for preset in args.presets:
            stem = Path(preset).stem
            out = Path(args.out) / f"{stem}-seed{seed}"
            finetune(pretrained, preset, out, [f"seed={seed}", *args.set])
            runs.append(out)
            labels.append(stem)
            run_dirs.setdefault(stem, []).append(out)
            longest.setdefault(stem, []).append(out)
            if args.resume_to and (not args.resume_only or stem in args.resume_only):
                longer = Path(args.out) / f"{stem}-seed{seed}-to{args.resume_to}"
                if not longer.exists():
                    shutil.copytree(out, longer)
                finetune(pretrained, preset, longer, [f"seed={seed}", *args.set, f"iterations={args.resume_to}"])
                runs.append(longer)
                longest[stem][-1] = longer
                labels.append(f"{stem}@{args.resume_to}")
        modes = [run_constrain(r) for r in runs]
        # the pretrained model under the mask; also without it when a design samples without (syntax_by_reward):
        # each design is read against the pretrained model drawn the same way
        extra = ["none"] if "none" in modes else []
        real, cols = evaluate_runs([pretrained, *[pretrained] * len(extra), *runs], ["syntax", *extra, *modes],
                                   pretrained, args.data, args.num, seed)
        base.append(cols[0])
        for label, col in zip([*(f"pretrained, {m}" for m in extra), *labels], cols[1:]):
            results.setdefault(label, []).append(col)
        corpus.append(real)  # each seed's own sample of real tunes
    # an earlier table measured on other tunes is left out; this call's own figures are still written, then the
    # call fails naming it
    joined, refused = {}, []
    for path, cols in earlier.items():
        try:
            joined.update(comparable_columns(path, cols, {"corpus": corpus, "pretrained": base}))
        except ValueError as err:
            refused.append(str(err))
    results = {**joined, **results}  # the earlier tables' columns first, in the order given, then this call's

    print_table({"corpus": corpus, "pretrained": base, **results}, args)
    if args.plot:
        plot_curves(run_dirs, Path(args.plot))
    if args.targets_plot:
        plot_targets(longest, Path(args.targets_plot))
    if refused:
        fail(refused[0])


def print_table(columns: dict[str, list[dict]], args) -> None:
    """The table (mean +- std over the seeds per metric and column), the invalid tunes' reasons, and the --json
    and --trade-plot files."""
    header = ["metric", *columns]
    print("| " + " | ".join(header) + " |\n|---|" + "---:|" * (len(header) - 1))
    for key in SHOWN:
        print("| " + " | ".join([key, *(cell([c.get(key) for c in cols]) for cols in columns.values())]) + " |")
    seeds = len(columns["corpus"])
    fewer = [f"{name}: {len(cols)}" for name, cols in columns.items() if len(cols) < seeds]
    print(f"\n{seeds} seeds; mean +- std over seeds; --num {args.num}"
          + (f"; columns with fewer seeds: {', '.join(fewer)}" if fewer else ""))
    print_reasons(columns)
    if args.json:
        Path(args.json).write_text(json.dumps(columns, indent=2))
    if args.trade_plot:
        plot_trade(columns, Path(args.trade_plot))


def merge_seeds(paths: list[str]) -> dict[str, list[dict]]:
    """The columns of several --json files (one seed or more each), joined seed after seed. Every file must hold
    the corpus and pretrained columns; a design column some files lack (a run not continued to --resume-to) is
    averaged over the seeds that have it, and a note under the table says so."""
    merged: dict[str, list[dict]] = {}
    for path, cols in read_earlier(paths).items():
        missing = {"corpus", "pretrained"} - set(cols)
        if missing:
            fail(f"--merge {path}: no {' or '.join(sorted(missing))} column: not a --json file of this script")
        for name, seeds in cols.items():
            merged.setdefault(name, []).extend(seeds)
    seeds = len(merged["corpus"])
    for name, cols in merged.items():
        if len(cols) < seeds:
            print(f"note: column {name}: {len(cols)} of {seeds} seeds", file=sys.stderr)
    return merged


# Figures fixed by the tunes sampled: equal only if the same tunes were drawn (same seed, --num, data, machine,
# thread count).
SAMPLED = ("valid_rate", "mean_notes", "two_strain_tunes", "repeat_sign_tunes", "notes_not_in_key")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_earlier(paths: list[str]) -> dict[str, dict[str, list[dict]]]:
    """The --with files, read before anything is run (a bad one ends the call at once)."""
    out = {}
    for path in paths:
        try:
            cols = json.loads(Path(path).read_text())
            if not isinstance(cols, dict) or not all(isinstance(v, list) for v in cols.values()):
                raise ValueError("not a --json file of this script")
        except (OSError, ValueError) as err:
            fail(f"--with {path}: cannot read it ({err})")
        out[path] = cols
    return out


def comparable_columns(path: str, earlier: dict[str, list[dict]], ours: dict[str, list[dict]]) -> dict:
    """The design columns of an earlier call's --json, checked to be comparable: its corpus and pretrained
    columns must hold this call's figures, seed by seed (else the designs were measured on other tunes)."""
    for name, mine in ours.items():
        theirs = earlier.get(name, [])
        if len(theirs) != len(mine):
            raise ValueError(f"--with {path}: its {name} column has {len(theirs)} seeds, this call's "
                             f"{len(mine)}: not comparable")
        for seed, (a, b) in enumerate(zip(theirs, mine)):
            for key in SAMPLED:
                if key in b and (key not in a or abs(a[key] - b[key]) > 1e-9):
                    raise ValueError(f"--with {path}: {name} {key} of seed position {seed} is {a.get(key)} "
                                     f"there, {b[key]} here: other tunes, not comparable")
    return {k: v for k, v in earlier.items() if k not in ours}


def cell(values: list, digits: int = 3) -> str:
    """A table cell: mean +- std over the seeds (one value as it is; none measured: empty)."""
    values = [v for v in values if v is not None]
    if not values:
        return ""
    return (f"{np.mean(values):.{digits}f} +- {np.std(values):.{digits}f}" if len(values) > 1
            else f"{values[0]:.{digits}f}")


def print_reasons(columns: dict[str, list[dict]]) -> None:
    """Under the table, per column, the commonest first problems of its invalid tunes: what limits valid_rate."""
    from rlmusic.evaluate import reasons_line

    for label, cols in columns.items():
        print(f"invalid ({label}), first problems as a share of tunes, mean over seeds: "
              f"{reasons_line(mean_reasons(cols))}")


def mean_reasons(columns: list[dict]) -> dict[str, float]:
    """evaluate's `invalid_reasons` averaged over seeds (a kind a seed did not see counts 0), commonest first."""
    total: dict[str, float] = {}
    for c in columns:
        for kind, share in c.get("invalid_reasons", {}).items():
            total[kind] = total.get(kind, 0.0) + share / len(columns)
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def finetune(pretrained: Path, preset: str, out: Path, sets: list[str]) -> None:
    """One `rlmusic finetune` run (resumed if `out` holds one)."""
    subprocess.run([sys.executable, "-m", "rlmusic", "finetune", "--checkpoint", str(pretrained), "--config", preset,
                    "--out", str(out), *[x for s in sets for x in ("--set", s)]], check=True)


CURVES = (("valid_rate", "valid share (scanner)", False), ("chars_per_tune", "characters per tune", False),
          ("kl", "KL to the pretrained model, nats/char", False), ("beta", "beta (KL coefficient)", True))


def metrics_rows(dirs: list[Path]) -> list[list[dict]]:
    """Each run's metrics.jsonl, a list of rows per run."""
    return [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in dirs]


def seed_band(ax, rows: list[list[dict]], key: str, label: str) -> None:
    """`key` per iteration: the mean over the runs drawn as a line, their range shaded (iterations all runs have:
    seeds may stop at different iterations, a run still going; a row without `key` is left out of the mean)."""
    n = min(len(r) for r in rows)
    values = np.array([[row.get(key, np.nan) for row in r[:n]] for r in rows], dtype=float)
    steps = np.arange(1, n + 1)
    line, = ax.plot(steps, np.nanmean(values, axis=0), label=label)
    ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=line.get_color(), alpha=0.2)


def plot_curves(run_dirs: dict[str, list[Path]], path: Path) -> None:
    """Each design's per-iteration training curves from its runs' metrics.jsonl: mean over seeds, range shaded."""
    from rlmusic.files import atomic_write_bytes
    from rlmusic.plots import figure_png, new_figure

    fig = new_figure((9, 6))
    axes = fig.subplots(2, 2).ravel()
    for design, dirs in run_dirs.items():
        rows = metrics_rows(dirs)
        for ax, (key, title, log_scale) in zip(axes, CURVES):
            seed_band(ax, rows, key, f"{design} ({len(dirs)} seeds)")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("iteration")
            if log_scale:
                ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    atomic_write_bytes(path, figure_png(fig, dpi=90))


def plot_targets(run_dirs: dict[str, list[Path]], path: Path) -> None:
    """For every reward a design holds at a target (`reward_targets` in its runs' config.yaml): the iteration's
    mean score with the target dashed, and the weight it was scored with; mean over seeds, range shaded. Designs
    without targets are left out; with none at all, an error says so."""
    import yaml

    from rlmusic.files import atomic_write_bytes
    from rlmusic.plots import figure_png, new_figure

    panels = []  # (design, reward, target, rows per seed)
    for design, dirs in run_dirs.items():
        targets = yaml.safe_load((dirs[0] / "config.yaml").read_text()).get("reward_targets") or {}
        rows = metrics_rows(dirs)
        panels += [(design, name, target, rows) for name, target in targets.items()]
    if not panels:
        raise SystemExit(f"--targets-plot: no preset among {', '.join(run_dirs)} sets reward_targets")
    fig = new_figure((9, 2.6 * len(panels)))
    axes = np.array(fig.subplots(len(panels), 2)).reshape(len(panels), 2)
    for (design, name, target, rows), (score_ax, weight_ax) in zip(panels, axes):
        for ax, key in ((score_ax, f"rewards/{name}"), (weight_ax, f"weights/{name}")):
            seed_band(ax, rows, key, f"{design} ({len(rows)} seeds)")
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
        score_ax.axhline(target, color="k", linestyle="--", linewidth=1, label=f"target {target}")
        score_ax.set_title(f"{design}: mean {name} of the iteration's tunes", fontsize=9)
        weight_ax.axhline(0, color="k", linewidth=0.5)
        weight_ax.set_title(f"{design}: weight of {name}", fontsize=9)
        score_ax.legend(fontsize=7)
    atomic_write_bytes(path, figure_png(fig, dpi=90))


def plot_trade(columns: dict[str, list[dict]], path: Path) -> None:
    """Form against validity: per column (the pretrained model, each preset), two-strain tunes and tunes with repeat
    signs against the valid share, mean +- std over the seeds; the corpus's mean +- 0.05 shaded (the form target)."""
    from rlmusic.files import atomic_write_bytes
    from rlmusic.plots import figure_png, new_figure

    fig = new_figure((10, 4.2))
    axes = fig.subplots(1, 2)
    for ax, key, label in zip(axes, ("two_strain_tunes", "repeat_sign_tunes"),
                              ("two-strain tunes", "tunes with repeat signs")):
        real = [c[key] for c in columns["corpus"] if c.get(key) is not None]
        if real:
            ax.axhspan(np.mean(real) - 0.05, np.mean(real) + 0.05, color="tab:green", alpha=0.15,
                       label="corpus +- 0.05")
        for name, rows in columns.items():
            pts = [(r["valid_rate"], r[key]) for r in rows
                   if r.get("valid_rate") is not None and r.get(key) is not None]
            if name == "corpus" or not pts:
                continue
            x, y = np.array(pts).T
            ax.errorbar(x.mean(), y.mean(), xerr=x.std(), yerr=y.std(), fmt="o", capsize=3, label=name)
        ax.set(xlabel="valid share", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Form against validity (mean +- std over {max(len(r) for r in columns.values())} seeds)",
                 fontsize=10)
    atomic_write_bytes(path, figure_png(fig, dpi=90))


if __name__ == "__main__":
    main()

"""A synthetic listener for the preference loop: the rating file, the reward model, measured without a person.

    python benchmarks/preferences.py [--pairs 500] [--seeds 0 1 2] [--out runs/preferences]
        [--json benchmarks/results/preferences.json]
    python benchmarks/preferences.py --finetune [--seeds 0 1 2] [--num 200] [--out runs/preferences]
        [--json benchmarks/results/preference_finetune.json]
    python benchmarks/preferences.py --merge A.json B.json ... [--json ALL.json]   # --finetune calls, a seed each

The listener's hidden rule: of two tunes it prefers the one with the higher `cadences` + `phrase_repeats` (strains
that end on the tonic, bars that come back within a strain), and has no preference when they differ by less than
0.05. The script

1. draws --pairs pairs from the shipped model under the grammar's mask (as `rlmusic rate` does, without the sheet
   music and audio a person needs) and labels them
   through the rating folder's own code (rlmusic.rate.Ratings.record) into OUT/preferences.jsonl: the file a
   person would have made on the rating page;
2. per seed, fits the reward model (`rlmusic reward-model`: Bradley-Terry, 20 % of the pairs held out, the split
   drawn by the seed) in each feature view (`--features both`, the default, `network`, `music`: rlmusic/
   preference.py) and reports how often it ranks the held-out pairs with a winner as the rule does (the target:
   at least 0.85), mean +- std over the seeds. The default view's model of seed S is saved as OUT/rm-seedS.

With --finetune (after the call above, which leaves OUT/preferences.jsonl and OUT/rm-seedS), per seed S:

3. PPO on the learned reward (`benchmarks/presets/preference.yaml`: `rewards.preference` with the realness guard
   `typical_guard` and header-neutral rewards, `preference_model=OUT/rm-seedS`) into OUT/ppo-seedS, and DPO on the
   pairs (`benchmarks/presets/preference_dpo.yaml`, `preferences=OUT/preferences.jsonl`) into OUT/dpo-seedS, each
   a `finetune` run as docs/tutorials/your-taste.md shows (resumed if it exists);
4. `evaluate` samples --num tunes (seed S, under the grammar's mask) from the shipped model and both runs, against
   the same real tunes, and reports per column the listener's rule (the means of `cadences` and of
   `phrase_repeats`, each over the tunes it applies to, summed), the valid share, the KL to the shipped model and
   the realness guards (`discriminator_text`, `discriminator_features`): mean +- std over the seeds. The issue's
   targets: the rule moves by more than the spread, valid >= 0.99, KL <= 0.2 nats/char, each discriminator within
   +0.02 of the shipped model's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from _common import hardware, hardware_line, parser  # noqa: E402 (the repository on sys.path)

TIE = 0.05


def rule(tunes: list[str]) -> np.ndarray:
    """The hidden taste: cadences + phrase_repeats of each tune (a rule that does not apply scores 0)."""
    from rlmusic.rewards import scan_all, score

    scans = scan_all(tunes)
    total = np.zeros(len(tunes))
    for name in ("cadences", "phrase_repeats"):
        total += [s or 0.0 for s in score(name, tunes, scans=scans)]
    return total


def label(folder: Path, pairs: int, checkpoint: Path, log=print) -> list[dict]:
    """Draw the pairs (resumed if the folder has them) and record the listener's choice of each."""
    from rlmusic.rate import Ratings, draw_pairs
    from rlmusic.rundir import load_model, shipped_model

    ratings = Ratings(folder, model="pretrained" if checkpoint == shipped_model() else str(checkpoint))
    if len(ratings.pairs) < pairs:
        model, vocab, _ = load_model(checkpoint)
        draw_pairs(ratings, model, vocab, pairs, seed=0, log=log, render=False, constrain="syntax")
    a = rule([p[0] for p in ratings.pairs[:pairs]])
    b = rule([p[1] for p in ratings.pairs[:pairs]])
    for i in range(pairs):
        if i not in ratings.done:
            ratings.record(i, "none" if abs(a[i] - b[i]) < TIE else "a" if a[i] > b[i] else "b")
    return [c for c in ratings.choices if c["pair"] < pairs]


SHOWN = ("rule", "rewards/cadences", "rewards/phrase_repeats", "valid_rate", "kl_to_reference",
         "discriminator_text", "discriminator_features", "ends_with_tonic", "notes_in_repeated_motif", "mean_notes")


PRESETS = Path(__file__).parent / "presets"
PPO_PRESET = (PRESETS / "preference.yaml").resolve()


def run_folder(folder: Path, agent: str, preset: Path, seed: int) -> Path:
    """OUT/ppo-seedS (OUT/dpo-seedS) for the measured presets; OUT/ppo-STEM-seedS for another PPO preset."""
    return folder / (f"{agent}-seed{seed}" if agent == "dpo" or preset == PPO_PRESET
                     else f"{agent}-{preset.stem}-seed{seed}")


def finetune_and_measure(folder: Path, seeds: list[int], num: int, data: list[str], shipped: Path,
                         sets: list[str], agents=("ppo", "dpo"), ppo_preset: Path = PPO_PRESET
                         ) -> dict[str, list[dict]]:
    """Steps 3 and 4 of the module docstring: column name -> one metrics dict per seed."""
    from reward_designs import finetune  # noqa: E402 (benchmarks/ is on sys.path: this script's folder)

    from rlmusic import evaluate, validity

    presets = {"ppo": ppo_preset, "dpo": PRESETS / "preference_dpo.yaml"}
    columns: dict[str, list[dict]] = {"corpus": [], "shipped": [], **{a: [] for a in agents}}
    for seed in seeds:
        inputs = {"ppo": f"preference_model={folder / f'rm-seed{seed}'}",  # what each agent learns from
                  "dpo": f"preferences={folder / 'preferences.jsonl'}"}
        runs = [run_folder(folder, a, presets[a], seed) for a in agents]
        for agent, run in zip(agents, runs):
            finetune(shipped, str(presets[agent]), run, [f"seed={seed}", inputs[agent], *sets])
        opts = evaluate.EvaluateConfig(data=data, checkpoint=[str(shipped), *map(str, runs)], num=num, seed=seed,
                                       constrain="syntax", reference=str(shipped), rewards="cadences,phrase_repeats",
                                       checker=validity.resolve_checker("auto"))
        got = evaluate.run(opts, log=lambda m: print(m, file=sys.stderr))
        for name, col in zip(columns, got.values()):  # corpus, then the checkpoints in order
            col = {k: v for k, v in col.items() if k != "corpus"}
            col["rule"] = (col.get("rewards/cadences") or 0.0) + (col.get("rewards/phrase_repeats") or 0.0)
            columns[name].append(col)
    return columns


def print_finetune_table(columns: dict[str, list[dict]]) -> None:
    from reward_designs import cell  # noqa: E402 (mean +- std over the seeds, as the designs table writes it)

    print("| metric | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for key in SHOWN:
        print(f"| {key} | " + " | ".join(cell([c.get(key) for c in cols]) for cols in columns.values()) + " |")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/preferences")
    ap.add_argument("--json")
    ap.add_argument("--finetune", action="store_true", help="steps 3 and 4: PPO and DPO on the preferences")
    ap.add_argument("--num", type=int, default=200, help="--finetune: tunes evaluate samples per column")
    ap.add_argument("--data", nargs="+", default=["oneills1850", "ryansMammoth", "airdsAirs", "essenFolksong"],
                    help="--finetune: the real tunes of the corpus column and the realness reference")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="one table of --finetune calls made a seed each (run in parallel, one per core)")
    ap.add_argument("--checkpoint", help="the model to draw pairs from and fine-tune (default: the shipped one)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="--finetune: a setting for both runs on top of their presets (repeatable)")
    ap.add_argument("--agents", nargs="+", choices=["ppo", "dpo"], default=["ppo", "dpo"],
                    help="--finetune: the runs to make and measure")
    ap.add_argument("--ppo-preset", type=Path, default=PPO_PRESET,
                    help="--finetune: the PPO run's preset (another than the default runs into OUT/ppo-STEM-seedS)")
    args = ap.parse_args()
    from rlmusic.rundir import shipped_model

    args.checkpoint = Path(args.checkpoint) if args.checkpoint else shipped_model()
    if args.merge:
        return merge_main(args)
    if args.finetune:
        return finetune_main(args)

    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    choices = label(folder, args.pairs, args.checkpoint, log=lambda m: print(m, file=sys.stderr))
    kinds = {k: sum(c["choice"] == k for c in choices) for k in ("a", "b", "none")}
    views = fit_views(choices, args.checkpoint, args.seeds, folder)
    print(hardware_line())
    print(f"{len(choices)} pairs labelled by the rule (a {kinds['a']}, b {kinds['b']}, none {kinds['none']})")
    held = [r["heldout_pairs"] for r in views["both"]]
    print(f"held-out agreement with the rule, mean +- std over {len(args.seeds)} seeds ({min(held)}-{max(held)} "
          f"held-out pairs with a winner); target >= 0.85")
    for view, rows in views.items():
        acc = [r["heldout_accuracy"] for r in rows]
        print(f"  features {view:8s} {np.mean(acc):.3f} +- {np.std(acc):.3f}" + ("  (the default)" * (view == "both")))
    if args.json:
        from rlmusic.files import atomic_write_text

        accuracy = {v: [r["heldout_accuracy"] for r in rows] for v, rows in views.items()}
        atomic_write_text(Path(args.json), json.dumps({
            **hardware(), "command": "python benchmarks/preferences.py " + " ".join(sys.argv[1:]),
            "pairs": len(choices), "choices": kinds, "views": views,
            **{f"mean_accuracy_{v}": float(np.mean(a)) for v, a in accuracy.items()},
            **{f"std_accuracy_{v}": float(np.std(a)) for v, a in accuracy.items()}}, indent=1))


def fit_views(choices: list[dict], checkpoint: Path, seeds: list[int], folder: Path) -> dict[str, list[dict]]:
    """Per feature view and seed, the reward model's held-out accuracy (each view's features computed once); the
    default view's model of each seed is saved as OUT/rm-seedS, the one --finetune fine-tunes on."""
    from rlmusic import preference
    from rlmusic.rundir import vocab_fingerprint

    model, vocab = preference.load_features_model(checkpoint)
    a, b, _ = preference.pair_targets(choices)
    print(f"features of {len(a) + len(b)} tunes", file=sys.stderr)
    net = [preference.network_features(model, vocab, t) for t in (a, b)]
    music = [preference.music_features(t) for t in (a, b)]
    by_view = {"both": [np.concatenate([n, m], axis=1) for n, m in zip(net, music)], "network": net, "music": music}
    views: dict[str, list[dict]] = {}
    for view, (fa, fb) in by_view.items():
        for seed in seeds:
            rm = preference.fit(choices, fa, fb, checkpoint, vocab_fingerprint(vocab), seed=seed, features=view,
                                log=lambda m: print(f"{view}, seed {seed}: {m}", file=sys.stderr))
            views.setdefault(view, []).append({"seed": seed, "heldout_accuracy": rm.heldout_accuracy,
                                               "heldout_pairs": rm.heldout_pairs})
            if view == "both":
                rm.save(folder / f"rm-seed{seed}")
    return views


def finetune_main(args) -> None:
    folder = Path(args.out)
    missing = [p for p in [folder / "preferences.jsonl", *(folder / f"rm-seed{s}" for s in args.seeds)]
               if not p.exists()]
    if missing:
        sys.exit(f"error: {missing[0]} is missing: run `python benchmarks/preferences.py --out {folder}` first")
    columns = finetune_and_measure(folder, args.seeds, args.num, args.data, args.checkpoint, args.sets,
                                   args.agents, args.ppo_preset.resolve())
    report(columns, args)


def merge_main(args) -> None:
    """The --finetune JSONs of calls made a seed each (the same --num and --data), joined seed after seed."""
    parts = [json.loads(Path(f).read_text()) for f in args.merge]
    if len({(p["num"], tuple(p["data"])) for p in parts}) > 1:
        sys.exit("error: --merge: the files differ in --num or --data")
    args.seeds = [s for p in parts for s in p["seeds"]]
    args.num, args.data = parts[0]["num"], parts[0]["data"]
    report({name: [c for p in parts for c in p["columns"][name]] for name in parts[0]["columns"]}, args)


def report(columns: dict[str, list[dict]], args) -> None:
    print(hardware_line())
    print(f"{len(args.seeds)} seeds, {args.num} tunes per column, sampled under the grammar's mask")
    print_finetune_table(columns)
    if args.json:
        from rlmusic.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps({
            **hardware(), "command": "python benchmarks/preferences.py " + " ".join(sys.argv[1:]),
            "seeds": args.seeds, "num": args.num, "data": args.data, "columns": columns}, indent=1))


if __name__ == "__main__":
    main()

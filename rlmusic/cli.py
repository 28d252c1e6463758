"""The command line: `python -m rlmusic {pretrain,finetune,sample,evaluate,rewards} ...`.

Every bad input ends as one `error: ...` line on stderr and exit status 2 (see rlmusic.errors).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from rlmusic import interrupts
from rlmusic.errors import EXIT_USER_ERROR, UserError

def _config_dir() -> Path:
    """The presets: rlmusic/configs/ when installed from a wheel, the repository's configs/ otherwise."""
    here = Path(__file__).resolve().parent
    installed = here / "configs"
    return installed if (installed / "pretrain").is_dir() else here.parent / "configs"


CONFIG_DIR = _config_dir()


def _config_path(value: str | None, command: str) -> Path | None:
    """--config takes a path, or a preset name from configs/<command>/ ("tiny" -> configs/pretrain/tiny.yaml).
    Without it, the `default` preset (the configuration docs/measurements.md measures), where the presets are at hand."""
    if value is None:
        default = CONFIG_DIR / command / "default.yaml"
        return default if default.exists() else None
    path = Path(value)
    if not path.is_file() and not path.suffix:  # a folder named like the preset (a run called tiny) is not it
        preset = CONFIG_DIR / command / f"{value}.yaml"
        if preset.exists():
            return preset
    if not path.exists():
        raise UserError(f"--config {value}: no such file (presets: "
                        f"{', '.join(sorted(p.stem for p in (CONFIG_DIR / command).glob('*.yaml')))})")
    return path


def cmd_pretrain(args) -> int:
    from rlmusic import config as config_lib
    from rlmusic.corpus import resolve_sources
    from rlmusic.pretrain import PretrainConfig, run_pretrain

    overrides = list(args.set or [])
    cfg = config_lib.load(PretrainConfig, _config_path(args.config, "pretrain"), overrides)
    if args.data:
        cfg.data.sources = list(args.data)
    if args.midi_channel is not None:
        cfg.data.midi_channel = args.midi_channel
    resolve_sources(cfg.data.sources)  # a wrong path fails here, before anything is printed or written
    print("config:\n" + config_lib.dump_yaml(cfg).rstrip(), file=sys.stderr)
    out = run_pretrain(cfg, args.out, use_wandb=args.wandb, log=lambda m: print(m, file=sys.stderr))
    print(f"run saved in {out}", file=sys.stderr)
    return 0


def cmd_finetune(args) -> int:
    from rlmusic import config as config_lib
    from rlmusic.finetune import FinetuneConfig, run_finetune

    cfg = config_lib.load(FinetuneConfig, _config_path(args.config, "finetune"), list(args.set or []))
    out = run_finetune(cfg, _checkpoint(args.checkpoint), args.out, use_wandb=args.wandb, log=lambda m: print(m, file=sys.stderr))
    print(f"run saved in {out}", file=sys.stderr)
    return 0


def _checkpoint(value: str | None) -> Path:
    """--checkpoint: a run directory, or none / `pretrained` for the model shipped in the package."""
    from rlmusic.rundir import SHIPPED_MODEL, shipped_model

    if value is None or value == "pretrained":
        path = shipped_model()
        print(f"using the shipped model {SHIPPED_MODEL} ({path})", file=sys.stderr)
        return path
    return Path(value)


def cmd_sample(args) -> int:
    from rlmusic import validity
    from rlmusic.render import check_formats, write_outputs
    from rlmusic.rundir import load_model
    from rlmusic.sample import DEFAULT_PRIMER, Sampler, header_primer

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    check_formats(formats)
    if args.primer is not None and any(v is not None for v in (args.key, args.meter, args.title)):
        raise UserError("--primer cannot be combined with --key/--meter/--title (they build a primer)")
    if args.primer is not None:
        primer = args.primer.replace("\\n", "\n")
    elif any(v is not None for v in (args.key, args.meter, args.title)):
        primer = header_primer(key=args.key, meter=args.meter, title=args.title)
    else:
        primer = DEFAULT_PRIMER
    checker = validity.resolve_checker(args.checker)
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out}: is a file, not a folder")  # before the sampling work
    model, vocab, _ = load_model(_checkpoint(args.checkpoint))
    tunes = Sampler(model, vocab).generate(args.num, primer=primer, max_length=args.max_length,
                                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                           seed=args.seed, constrain=args.constrain)
    if args.out is None:
        for t in tunes:
            print(t.text + "\n")
        return 0
    summary = write_outputs(tunes, Path(args.out), formats, log=lambda m: print(m, file=sys.stderr),
                            checker=checker)
    print(summary, file=sys.stderr)
    return 0


def cmd_rate(args) -> int:
    from rlmusic.rate import Ratings, draw_pairs, make_server
    from rlmusic.rundir import load_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    ratings = Ratings(out, model=str(args.checkpoint or "pretrained"))
    if len(ratings.pairs) < args.pairs:
        model, vocab, _ = load_model(_checkpoint(args.checkpoint))
        draw_pairs(ratings, model, vocab, args.pairs, args.seed, log=lambda m: print(m, file=sys.stderr),
                   max_length=args.max_length, temperature=args.temperature, constrain=args.constrain)
    try:
        server = make_server(ratings, args.port)
    except OSError as exc:
        raise UserError(f"--port {args.port}: cannot listen on 127.0.0.1 ({exc.strerror or exc})") from exc
    print(f"rate the tunes at http://127.0.0.1:{server.server_address[1]}/ ({len(ratings.done)} of "
          f"{len(ratings.pairs)} pairs rated so far); Ctrl-C ends", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C is how the page is closed: every choice is already on disk
        _fresh_line()
    finally:
        server.server_close()
    print(f"{len(ratings.choices)} choices in {out / 'preferences.jsonl'}", file=sys.stderr)
    return 0


def cmd_reward_model(args) -> int:
    from rlmusic import preference
    from rlmusic.rate import read_preferences

    choices = []
    for path in map(Path, args.preferences):
        if not path.is_file():
            raise UserError(f"--preferences {path}: no such file")
        choices += read_preferences(path)
    model = preference.train(choices, _checkpoint(args.checkpoint), l2=args.l2, heldout=args.heldout,
                             seed=args.seed, features=args.features, log=lambda m: print(m, file=sys.stderr))
    path = model.save(Path(args.out))
    acc = "not measured" if model.heldout_accuracy is None else \
        f"{model.heldout_accuracy:.3f} on {model.heldout_pairs} held-out pairs"
    print(f"reward model of {model.pairs} choices in {path}; held-out accuracy {acc}", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
    from rlmusic import evaluate, validity

    if args.checkpoint is None and not args.data:
        args.checkpoint = ["pretrained"]  # nothing named: the shipped model
    if args.reference and not args.checkpoint:
        raise UserError("--reference needs --checkpoint (the model to compare with it)")
    args.checker = validity.resolve_checker(args.checker)
    for flag, value in (("--json", args.json), ("--plots", args.plots)):
        if value is not None and Path(value).is_dir():
            raise UserError(f"{flag} {value}: is a folder; give a file name")  # before the sampling work
    if args.report is not None and Path(args.report).exists() and not Path(args.report).is_dir():
        raise UserError(f"--report {args.report}: is a file, not a folder")
    fields = {f.name for f in dataclasses.fields(evaluate.EvaluateConfig)}
    cfg = evaluate.EvaluateConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    cfg.checkpoint = [str(_checkpoint(c)) for c in args.checkpoint or []]
    cfg.reference = str(_checkpoint(args.reference)) if args.reference else None
    evaluate.run(cfg, log=lambda m: print(m, file=sys.stderr))
    return 0


def cmd_rewards(args) -> int:
    from rlmusic.rewards import available

    rewards = available()
    width = max(len(n) for n in rewards)
    for name, info in sorted(rewards.items()):
        print(f"{name:<{width}}  {info.source:<12}  {info.summary}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error:` line (and exit 2) like every other bad input."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see --help)\n")


def _number(kind, low=None, high=None, low_open=False):
    """An argparse type: a number of `kind` within the bounds (the configs' `Range`), else an error naming them."""
    from rlmusic.config import Range

    bounds = Range(low, high, min_open=low_open)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if (problem := bounds.problem(value)):
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


# Bounds that keep numbers inside what the sampler computes with: the seed times 1,000,003 (plus the tune index)
# within int64, top-k within int32, and a tune's length within what is allocated for it at once.
MAX_SEED, MAX_TOP_K, MAX_LENGTH = 2**31 - 1, 1_000_000, 100_000


def _title(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise argparse.ArgumentTypeError("a title is one line (a newline would add header lines)")
    return text


def _key(text: str) -> str:
    from rlmusic.abc_fields import parse_key

    if parse_key(text)[1]:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ABC key (examples: D, Ador, Gm, Bb, F#mix)")
    return text


def _meter(text: str) -> str:
    from rlmusic.abc_fields import parse_meter

    if parse_meter(text)[1]:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ABC meter (examples: 4/4, 6/8, C, C|)")
    return text


def _constrain_flag(p) -> None:
    p.add_argument("--constrain", default="syntax", choices=("syntax", "none"),
                   help="syntax (default): draw each character from those the ABC grammar allows, so every tune is "
                        "valid ABC; none: the raw model")


def build_parser() -> argparse.ArgumentParser:
    from rlmusic.preference import FEATURE_VIEWS

    parser = _Parser(prog="python -m rlmusic", description=__doc__.splitlines()[0])
    common = _Parser(add_help=False)
    common.add_argument("--traceback", action="store_true",
                        help="on an error, also print the traceback of its cause (or set RLMUSIC_TRACEBACK=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("pretrain", parents=[common], help="train the character LSTM on ABC tunes")
    p.add_argument("--config", help="YAML config file, or a preset name from configs/pretrain/ (tiny, quick, "
                   "attention, mit_lab); default: the default preset")
    p.add_argument("--data", nargs="+", help="ABC or MIDI files, folders, globs or music21 collections (default: "
                                             "the collections bundled with music21)")
    p.add_argument("--midi-channel", type=_number(int, 0, 16), help="MIDI files: the channel whose voice becomes "
                   "the tune (default 0: the voice with the most notes)")
    p.add_argument("--out", default="runs/pretrain", help="run directory (re-running with it resumes)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config field, e.g. "
                                                                        "train.steps=200 (repeatable)")
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (honours WANDB_MODE=offline)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("finetune", parents=[common], help="fine-tune a pretrained run with RL on reward plugins (KL-controlled)")
    p.add_argument("--checkpoint", help="the pretrained run directory (default: `pretrained`, the model shipped "
                                        "in the package)")
    p.add_argument("--config", help="YAML config file, or a preset name from configs/finetune/ (tiny, quick, "
                   "sequence_tutor); default: the default preset")
    p.add_argument("--out", default="runs/finetune", help="run directory (re-running with it resumes)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config field (repeatable)")
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (honours WANDB_MODE=offline)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("sample", parents=[common], help="generate tunes from a run directory")
    p.add_argument("--checkpoint", help="run directory of pretrain or finetune (default: `pretrained`, the model "
                                        "shipped in the package)")
    p.add_argument("--checker", default="auto", choices=("auto", "abc2midi", "scanner"),
                   help="validity check of the summary: abc2midi, the scanner, or auto (abc2midi when installed)")
    p.add_argument("--num", type=_number(int, 1), default=8, help="number of tunes")
    p.add_argument("--temperature", type=_number(float, 0), default=1.0, help="softmax temperature (0 = greedy)")
    p.add_argument("--top-k", type=_number(int, 0, MAX_TOP_K), default=0,
                   help="sample from the k most likely characters (0 = off)")
    p.add_argument("--top-p", type=_number(float, 0, 1, low_open=True), default=1.0,
                   help="nucleus sampling mass, in (0, 1] (1 = off)")
    p.add_argument("--primer", help="ABC text every tune starts with (\\n for newlines), e.g. 'X:1\\nT:Jig\\nM:6/8\\n'")
    p.add_argument("--key", type=_key, help="ask for this key, e.g. D, Ador, Gm (builds a header primer)")
    p.add_argument("--meter", type=_meter, help="ask for this meter, e.g. 6/8 (builds a header primer)")
    p.add_argument("--title", type=_title, help="title of the tunes (builds a header primer)")
    p.add_argument("--max-length", type=_number(int, 2, MAX_LENGTH), default=1500,
                   help="stop a tune at this many characters")
    p.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0, help="same seed, same tunes")
    p.add_argument("--out", help="folder for the tunes (default: print ABC to stdout)")
    p.add_argument("--formats", default="abc", help="comma-separated: abc,mid,wav,svg,html")
    _constrain_flag(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("rate", parents=[common], help="a local page to choose the better of two tunes, again and "
                                                       "again: preferences.jsonl for reward-model and dpo")
    p.add_argument("--checkpoint", help="run directory to draw the tunes from (default: the shipped model)")
    p.add_argument("--out", required=True, help="folder of the pairs, their files and preferences.jsonl "
                                                "(a re-run resumes it)")
    p.add_argument("--pairs", type=_number(int, 1, 100_000), default=20, help="pairs of tunes to rate")
    p.add_argument("--port", type=_number(int, 0, 65535), default=8765, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--temperature", type=_number(float, 0), default=1.0)
    p.add_argument("--max-length", type=_number(int, 2, MAX_LENGTH), default=1500)
    p.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0)
    _constrain_flag(p)
    p.set_defaults(func=cmd_rate)

    p = sub.add_parser("reward-model", parents=[common], help="learn a reward from preferences.jsonl "
                                                               "(Bradley-Terry on features of each tune)")
    p.add_argument("--preferences", nargs="+", required=True, help="preferences.jsonl files of `rate`")
    p.add_argument("--checkpoint", help="run whose network gives the features (default: the shipped model)")
    p.add_argument("--out", required=True, help="folder for reward_model.json")
    p.add_argument("--features", choices=FEATURE_VIEWS, default="both",
                   help="what the model sees of a tune: the pretrained network's view, the score's (cadences, "
                        "repeats, intervals, form), or both")
    p.add_argument("--l2", type=_number(float, 0), default=1e-2, help="L2 penalty on the weights")
    p.add_argument("--heldout", type=_number(float, 0, 0.9), default=0.2,
                   help="share of the pairs held out to measure accuracy before the final fit on all")
    p.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0)
    p.set_defaults(func=cmd_reward_model)

    p = sub.add_parser("evaluate", parents=[common], help="metrics table of a model's tunes (or of real tunes)")
    p.add_argument("--checkpoint", nargs="+", help="run directories to sample from (one column each; "
                   "`pretrained` is the shipped model, the default when --data is not given either)")
    p.add_argument("--checker", default="auto", choices=("auto", "abc2midi", "scanner"),
                   help="validity check: abc2midi, the scanner, or auto (abc2midi when installed)")
    p.add_argument("--reference", help="run directory of the prior: adds kl_to_reference")
    p.add_argument("--data", nargs="+", help="real tunes (ABC or MIDI files, folders, globs, music21 collections): "
                                             "the corpus column, realness metrics, nll_bits_per_char")
    p.add_argument("--midi-channel", type=_number(int, 0, 16), default=0,
                   help="MIDI files in --data: the channel whose voice is read (0: the voice with the most notes)")
    p.add_argument("--num", type=_number(int, 1), default=100, help="tunes sampled (and corpus tunes drawn)")
    p.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0)
    p.add_argument("--temperature", type=_number(float, 0), default=1.0)
    p.add_argument("--top-k", type=_number(int, 0, MAX_TOP_K), default=0,
                   help="sample from the k most likely characters (0 = off), as sample does")
    p.add_argument("--top-p", type=_number(float, 0, 1, low_open=True), default=1.0,
                   help="nucleus sampling mass, in (0, 1] (1 = off), as sample does")
    p.add_argument("--max-length", type=_number(int, 2, MAX_LENGTH), default=1500)
    p.add_argument("--json", help="write the metrics here (JSON)")
    p.add_argument("--plots", help="write pitch-class and interval histograms here (PNG)")
    p.add_argument("--rewards", help="comma-separated reward names (or module:function): adds the mean of each")
    p.add_argument("--copy-bars", type=_number(int, 1), default=4,
                   help="with --data: a tune copies when it shares this many consecutive bars with a real one")
    p.add_argument("--report", help="write an offline HTML report (table, histograms, form, tunes) in this folder")
    _constrain_flag(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("rewards", parents=[common], help="list every registered reward")
    p.set_defaults(func=cmd_rewards)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rlmusic import _quiet

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag (its error line is printed): the exit code, returned
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    _quiet.enable()
    interrupts.install()
    try:
        return args.func(args)
    except UserError as exc:
        _report(exc, args.traceback or os.environ.get("RLMUSIC_TRACEBACK") == "1")
        return getattr(exc, "exit_code", EXIT_USER_ERROR)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (interrupts.Terminated)
        _fresh_line()
        terminated = isinstance(exc, interrupts.Terminated)
        where = f" {exc}" if str(exc) else ""  # the training loops say where they stopped and what is kept
        print(f"error: {f'terminated ({exc.signal_name})' if terminated else 'interrupted'}{where}", file=sys.stderr)
        code = exc.exit_code if terminated else interrupts.EXIT_INTERRUPTED
        if argv is None:  # the program's own command line, not a caller in Python: the process ends here
            _leave(code)
        return code


def _leave(code: int) -> None:
    """End the process at once. The checkpoint, the logs and the error line are written by now. Unwinding further
    frees tf.data's iterator while this thread holds the GIL, and its destructor can wait forever on a worker thread
    (seen: SIGTERM in a pretraining run on transposed tunes hung after its error line)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fresh_line() -> None:
    """Close any progress bar still drawn, so the message that follows starts a line of its own."""
    runlog = sys.modules.get("rlmusic.runlog")  # no bar was drawn if it was never imported
    if runlog is not None:
        runlog.close_bars()


def _report(exc: UserError, traceback: bool) -> None:
    _fresh_line()
    if traceback and exc.__cause__ is not None:
        import traceback as tb

        tb.print_exception(exc.__cause__, file=sys.stderr)
    print(f"error: {exc}", file=sys.stderr)

import pytest

from rlmusic import config
from rlmusic.errors import UserError
from rlmusic.pretrain import PretrainConfig


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  steps: 10\n  learning_rate: 0.01\nmodel:\n  units: 32\n")
    cfg = config.load(PretrainConfig, path, ["train.steps=20", "data.sources=a.abc,b.abc", "train.learning_rate=1", "train.clip_norm=1e-2"])
    assert cfg.train.clip_norm == 0.01
    assert cfg.train.steps == 20 and cfg.model.units == 32
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.data.sources == ["a.abc", "b.abc"]
    assert cfg.model.layers == PretrainConfig().model.layers  # untouched fields keep defaults


def test_round_trip_through_yaml(tmp_path):
    cfg = config.load(PretrainConfig, None, ["model.units=48", "train.precision=mixed_bfloat16"])
    path = tmp_path / "saved.yaml"
    path.write_text(config.dump_yaml(cfg))
    assert config.load(PretrainConfig, path) == cfg


@pytest.mark.parametrize("override,message", [
    ("train.stepz=3", "unknown config key train.stepz"),
    ("nope.x=3", "unknown config key nope"),
    ("train.steps=ten", "config key train.steps: expected int"),
    ("train.steps=1.5", "config key train.steps: expected int"),
    ("model.units=true", "config key model.units: expected int"),
    ("train.learning_rate=fast", "config key train.learning_rate: expected float"),
    ("train.steps", "expected KEY=VALUE"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        config.load(PretrainConfig, None, [override])


@pytest.mark.parametrize("override,message", [
    # each accepted or crashing before these checks (issue reproductions)
    ("train.steps=-5", "config key train.steps: expected a number >= 1, got -5"),
    ("train.steps=0", "config key train.steps: expected a number >= 1, got 0"),
    ("train.batch_size=0", "config key train.batch_size: expected a number >= 1"),
    ("train.learning_rate=nan", "config key train.learning_rate: expected a finite number"),
    ("train.learning_rate=0", "config key train.learning_rate: expected a number > 0"),
    ("train.seq_length=0", "config key train.seq_length: expected a number >= 1"),
    ("model.units=0", "config key model.units: expected a number >= 1"),
    ("model.units=-3", "config key model.units: expected a number >= 1"),
    ("model.dropout=1", "config key model.dropout: expected a number >= 0 and < 1"),
    ("data.val_fraction=1.5", "config key data.val_fraction: expected a number > 0 and < 1"),
    ("data.val_fraction=0", "config key data.val_fraction: expected a number > 0 and < 1"),
    ("data.windows=sliding", "config key data.windows: expected one of tunes, random, got 'sliding'"),
    ("train.precision=float16", "config key train.precision: expected one of float32, mixed_bfloat16"),
])
def test_values_out_of_range_name_the_key_and_the_range(override, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("(", r"\(")):
        config.load(PretrainConfig, None, [override])


@pytest.mark.parametrize("override,message", [
    ("rewards.valid=nan", "config key rewards.valid: expected a finite number"),
    ("agent=sac", "config key agent: expected one of ppo, reinforce"),
    ("discount=1.5", "config key discount: expected a number >= 0 and <= 1"),
    ("tunes_per_iteration=0", "config key tunes_per_iteration: expected a number >= 1"),
    ("beta=-0.1", "config key beta: expected a number >= 0"),
])
def test_finetune_values_are_checked(override, message):
    from rlmusic.finetune import FinetuneConfig

    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        config.load(FinetuneConfig, None, [override])


def test_a_config_built_in_python_is_checked_too():
    from rlmusic.pretrain import TrainConfig

    with pytest.raises(UserError, match="config key steps: expected a number >= 1"):
        TrainConfig(steps=0)


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config.load(PretrainConfig, path)


def test_every_preset_loads():
    from pathlib import Path

    presets = sorted((Path(__file__).resolve().parents[1] / "configs" / "pretrain").glob("*.yaml"))
    assert {"default", "tiny", "mit_lab"} <= {p.stem for p in presets}
    for p in presets:
        config.load(PretrainConfig, p)


def test_measured_designs_spell_out_what_the_default_decides():
    # a design measured in docs/measurements.md must mean what it meant when measured, whatever the default
    # preset becomes: each names its rewards, gate and neutral headers itself (the default moved from syntax
    # rewards to music rewards once; the designs measured before kept theirs by writing them out)
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    designs = sorted((root / "benchmarks" / "presets").glob("*.yaml")) + [root / "configs/finetune/sequence_tutor.yaml"]
    for path in designs:
        data = config.read_yaml(path)
        missing = {"rewards", "gate", "neutral_headers"} - set(data)
        assert not missing, f"{path.name} leaves {sorted(missing)} to the default preset"


def test_every_finetune_preset_loads_and_names_real_rewards(monkeypatch):
    from pathlib import Path

    from rlmusic.finetune import FinetuneConfig
    from rlmusic.rewards import get

    root = Path(__file__).resolve().parents[1]
    presets = sorted((root / "configs" / "finetune").glob("*.yaml"))
    assert {"default", "tiny", "sequence_tutor"} <= {p.stem for p in presets}
    designs = sorted((root / "benchmarks" / "presets").glob("*.yaml"))  # the reward designs the README measures
    assert {"form_soft", "form_pi", "form_share"} <= {p.stem for p in designs}
    # what the preference designs leave to each run (benchmarks/preferences.py sets them): a folder and a file
    per_run = {"preference": ["preference_model=RM"], "preference_guarded": ["preference_model=RM"],
               "preference_strong": ["preference_model=RM"],
               "preference_dpo": ["preferences=prefs.jsonl"]}
    monkeypatch.syspath_prepend(str(root / "benchmarks"))  # designs name benchmarks/guards.py's rewards by path
    for p in presets + designs:
        cfg = config.load(FinetuneConfig, p, per_run.get(p.stem))
        for name in cfg.rewards:
            get(name)


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_the_default_preset_is_the_dataclass_default(command):
    """Other presets are read over the dataclass defaults, so those must be the default preset (the one the
    README measures): a preset then differs from it only where it says so."""
    from pathlib import Path

    from rlmusic.finetune import FinetuneConfig
    from rlmusic.pretrain import PretrainConfig

    cls = {"pretrain": PretrainConfig, "finetune": FinetuneConfig}[command]
    preset = Path(__file__).resolve().parents[1] / "configs" / command / "default.yaml"
    assert config.to_dict(config.load(cls, preset)) == config.to_dict(cls())


@pytest.mark.parametrize("preset", ["tiny", "quick", "default"])
def test_set_one_reward_changes_that_weight_under_every_preset(preset):
    # tiny and quick leave the rewards at their default: --set rewards.X=w adds or changes one weight there too,
    # as under the default preset, which lists them (it used to replace all of them with X alone)
    from rlmusic.cli import CONFIG_DIR
    from rlmusic.finetune import MUSIC_REWARDS, FinetuneConfig

    path = CONFIG_DIR / "finetune" / f"{preset}.yaml"
    cfg = config.load(FinetuneConfig, path, ["rewards.in_key=3", "rewards.form=0.5"])
    assert cfg.rewards == {**MUSIC_REWARDS, "in_key": 3.0, "form": 0.5}

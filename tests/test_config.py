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


def test_every_finetune_preset_loads_and_names_real_rewards():
    from pathlib import Path

    from rlmusic.finetune import FinetuneConfig
    from rlmusic.rewards import get

    presets = sorted((Path(__file__).resolve().parents[1] / "configs" / "finetune").glob("*.yaml"))
    assert {"default", "tiny", "sequence_tutor"} <= {p.stem for p in presets}
    for p in presets:
        cfg = config.load(FinetuneConfig, p)
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

"""Importing the library (a notebook, a script) changes no global state; the module graph flows one way."""

import subprocess
import sys

SNAPSHOT = """
import json, logging, os, sys
def state():
    import matplotlib
    out = {"env": {k: v for k, v in os.environ.items() if k.startswith(("TF_", "WANDB", "MPL"))},
           "backend": matplotlib.get_backend(), "tf_logger": logging.getLogger("tensorflow").level}
    if "tensorflow" in sys.modules:
        import tensorflow as tf
        out["policy"] = tf.keras.mixed_precision.global_policy().name
    return out
"""


def test_importing_rlmusic_changes_no_global_state():
    code = SNAPSHOT + """
import tensorflow as tf
before = state()
import rlmusic, rlmusic.pretrain, rlmusic.finetune, rlmusic.sample, rlmusic.evaluate, rlmusic.render, rlmusic.envs
import rlmusic.rewards.mix, rlmusic.runlog
after = state()
print(json.dumps([before, after]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert before == after


def test_a_pretrain_run_puts_the_precision_policy_back(tmp_path, data_dir):
    from conftest import TINY

    from rlmusic import config
    from rlmusic._tf import tf
    from rlmusic.pretrain import PretrainConfig, run_pretrain

    cfg = config.load(PretrainConfig, None, TINY + [f"data.sources={data_dir}", "train.precision=mixed_bfloat16"])
    run_pretrain(cfg, tmp_path / "run", log=lambda m: None)
    assert tf.keras.mixed_precision.global_policy().name == "float32"


def test_plots_leave_the_matplotlib_backend_alone(tmp_path, data_dir):
    code = SNAPSHOT + f"""
import matplotlib
matplotlib.use("svg")  # as a notebook might have chosen
from rlmusic import evaluate
evaluate.plot_histograms({{"a": ["X:1\\\\nT:t\\\\nM:4/4\\\\nK:C\\\\nCDEF|GABc|"]}}, __import__("pathlib").Path({str(tmp_path / "h.png")!r}))
print(matplotlib.get_backend())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "svg"
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_core_modules_import_no_plugin_and_no_command_above_them():
    """Data flows one way: finetune does not import pretrain, evaluate not the theory plugin, the core no
    reward plugin module."""
    code = """
import sys
import rlmusic.finetune
assert "rlmusic.pretrain" not in sys.modules, "finetune imports pretrain"
import rlmusic.evaluate, rlmusic.melody, rlmusic.abc, rlmusic.data
assert "rlmusic.rewards.theory" not in sys.modules and "rlmusic.rewards.syntax" not in sys.modules
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_the_gallery_and_the_report_start_without_tensorflow():
    """Writing files, the gallery, the report and the SVG worker need no TensorFlow (rlmusic/files.py), and the
    report does not import evaluate (the table is one model in rlmusic/tables.py, rendered by both)."""
    code = """
import sys
import rlmusic.render, rlmusic.report, rlmusic._svgworker, rlmusic.files, rlmusic.tables
assert "tensorflow" not in sys.modules, "tensorflow imported"
assert "rlmusic.evaluate" not in sys.modules, "report imports evaluate"
import rlmusic.rewards.registry
assert "rlmusic.rewards.syntax" not in sys.modules, "the registry imports a built-in reward module"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_no_import_circle_in_the_package():
    """No module imports one that imports it back, directly or through others, at the top or inside a function
    (read from the source: every `import rlmusic...` and `from rlmusic... import`)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    homes = {"rlmusic": "rlmusic", "rewards": "rlmusic.rewards", "envs": "rlmusic.envs"}
    graph = {}
    for folder, package in homes.items():
        for path in (root / folder).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            deps = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlmusic"):
                    deps |= ({f"{node.module}.{a.name}" for a in node.names} if node.module in homes.values()
                             else {node.module})
                elif isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names if a.name.startswith("rlmusic")}
            graph[name] = deps - {name}
    graph = {m: {d for d in deps if d in graph} for m, deps in graph.items()}

    def reaches(start, goal, seen):
        return any(d == goal or (d not in seen and not seen.add(d) and reaches(d, goal, seen))
                   for d in graph[start])

    circles = sorted(m for m in graph if not m.endswith(("rlmusic", "rewards", "envs")) and reaches(m, m, set()))
    assert circles == []

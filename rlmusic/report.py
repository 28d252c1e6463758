"""`evaluate --report DIR`: one offline HTML page to look at rather than read.

    DIR/index.html     the metrics table; the feature histograms of every column over the reference's; the form,
                       mode and meter shares as bars; and for each column a few of its tunes (sheet music,
                       audio, ABC text), as `sample`'s gallery shows them
    DIR/features.png   the feature distributions (KDE-smoothed, as rlmusic/realness.py compares them)
    DIR/form.png       form, mode and meter shares per column
    DIR/<column>/      the tunes shown (tune_NNN.abc/.svg/.wav)

Every piece of text from a tune or a run name is escaped. The page counts the images the browser drew
(`data-images-drawn` on <body>), so a reader or a test sees at once whether everything loaded.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from rlmusic import realness
from rlmusic.abc import scan
from rlmusic.files import atomic_write_bytes, atomic_write_text
from rlmusic.structure import strains
from rlmusic.tables import html_table

TUNES_SHOWN = 3
FORM_KEYS = ("repeat_sign_tunes", "two_strain_tunes", "aabb_tunes", "meter_consistent_tunes")


def write_report(out: Path, columns: dict[str, dict], sources: dict[str, list[str]], reference: list[str],
                 checker: str = "auto", log=print) -> Path:
    from rlmusic.render import write_outputs
    from rlmusic.sample import Tune

    out.mkdir(parents=True, exist_ok=True)
    sets = dict(sources)
    if reference:
        sets["reference (real)"] = reference
    atomic_write_bytes(out / "features.png", _features_png(sets))
    atomic_write_bytes(out / "form.png", _form_png(sets, columns))
    galleries = []
    for i, (name, tunes) in enumerate(sources.items()):
        folder = f"set{i + 1}"  # a run name may hold anything: the folder name never comes from it
        shown = [Tune(t, False) for t in tunes[:TUNES_SHOWN]]
        formats = ["abc", "svg", "wav"]
        write_outputs(shown, out / folder, formats, log=lambda m: None, checker=checker)
        galleries.append(_gallery(name, folder, shown, out / folder))
    page = _PAGE.format(table=html_table(columns), galleries="\n".join(galleries),
                        names=html.escape(", ".join(sources)))
    atomic_write_text(out / "index.html", page)
    return out / "index.html"


def _gallery(name: str, folder: str, tunes, path: Path) -> str:
    from rlmusic.render import tune_card

    cards = [tune_card(t, f"tune_{j:03d}", path, prefix=f"{folder}/") for j, t in enumerate(tunes, start=1)]
    return "\n".join([f"<section><h2>{html.escape(name)}</h2>", *cards, "</section>"])


def _figure(size):
    from rlmusic.plots import new_figure

    return new_figure(size)


def _features_png(sets: dict[str, list[str]]) -> bytes:
    from rlmusic.plots import figure_png

    names = realness.FEATURES
    fig = _figure((4 * len(names) / 2, 6.5))
    axes = fig.subplots(2, (len(names) + 1) // 2).ravel()
    values = {label: [f for f in (realness.scalar_features(scan(t)) for t in tunes) if f]
              for label, tunes in sets.items()}
    for ax, feature in zip(axes, names):
        for label, feats in values.items():
            xs = np.array([f[feature] for f in feats])
            if len(xs) < 2:
                continue
            lo, hi = xs.min(), xs.max()
            grid = np.linspace(lo - 0.25 * (hi - lo or 1), hi + 0.25 * (hi - lo or 1), 200)
            style = dict(color="black", linestyle="--") if label.startswith("reference") else {}
            ax.plot(grid, realness._kde(xs, grid), label=label, **style)
        ax.set(title=feature.replace("_", " "), yticks=[])
    axes[0].legend(fontsize=7)
    return figure_png(fig, dpi=90)


def _form_png(sets: dict[str, list[str]], columns: dict[str, dict]) -> bytes:
    from rlmusic.plots import figure_png

    fig = _figure((14, 3.8))
    ax_form, ax_mode, ax_meter = fig.subplots(1, 3)
    labels = list(sets)
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        scans = [scan(t) for t in sets[label]]
        form = columns.get(label)
        if form is None:  # the reference: not a column of the table
            form = realness.form(sets[label], scans)
            form["two_strain_tunes"] = np.mean([len(strains(s, t)) >= 2 for s, t in zip(scans, sets[label])])
        ax_form.bar(np.arange(len(FORM_KEYS)) + i * width, [form.get(k) or 0 for k in FORM_KEYS], width,
                    label=label)
        for ax, cats, of in ((ax_mode, realness.MODES, realness._mode), (ax_meter, realness.METERS, realness._meter)):
            got = [of(s) for s in scans]
            ax.bar(np.arange(len(cats)) + i * width, [got.count(c) / max(1, len(got)) for c in cats], width)
    ax_form.set_xticks(np.arange(len(FORM_KEYS)) + 0.4 - width / 2,
                       [k.replace("_tunes", "").replace("_", " ") for k in FORM_KEYS], fontsize=8)
    ax_mode.set_xticks(np.arange(len(realness.MODES)) + 0.4 - width / 2, realness.MODES, fontsize=8)
    ax_meter.set_xticks(np.arange(len(realness.METERS)) + 0.4 - width / 2, realness.METERS, fontsize=8)
    ax_form.set(title="form (share of tunes)", ylim=(0, 1))
    ax_mode.set(title="mode (share of tunes)", ylim=(0, 1))
    ax_meter.set(title="meter (share of tunes)", ylim=(0, 1))
    ax_form.legend(fontsize=7)
    return figure_png(fig, dpi=90)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rlmusic evaluation: {names}</title>
<style>
body {{ font-family: Georgia, serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; font-size: .85em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .2em .6em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img.plot {{ width: 100%; }}
img.score {{ width: 100%; background: #fff; }}
section {{ border-top: 2px solid #aaa; margin-top: 2em; }}
article {{ border-top: 1px solid #ddd; padding: .6em 0; }}
pre {{ background: #f6f6f3; padding: .6em; overflow-x: auto; font-size: .85em; }}
</style>
</head>
<body>
<h1>Evaluation: {names}</h1>
<p id="status"></p>
<h2>Metrics</h2>
{table}
<h2>Feature distributions (dashed: the real reference tunes)</h2>
<img class="plot" src="features.png" alt="Feature distributions">
<h2>Form, mode and meter</h2>
<img class="plot" src="form.png" alt="Form, mode and meter shares">
{galleries}
<script>
// Count the images the browser actually drew, so a reader (or a test) sees at once whether all loaded.
window.addEventListener("load", function () {{
  var images = document.querySelectorAll("img");
  var drawn = Array.prototype.filter.call(images, function (img) {{ return img.complete && img.naturalWidth > 0; }});
  document.body.dataset.images = images.length;
  document.body.dataset.imagesDrawn = drawn.length;
  document.getElementById("status").textContent = drawn.length + " of " + images.length + " images drawn.";
}});
</script>
</body>
</html>
"""

"""Child process that engraves ABC to SVG with verovio.

verovio can abort the whole process on malformed ABC (a C++ exception escaping), so sampled tunes are engraved
here, never in the caller's process. Input on stdin: JSON list of [abc_text, svg_path]. For each item it writes
the SVG (atomically) and prints `done N`, or prints `fail N reason`; it flushes after each, so the parent knows
where a crash happened and why a tune has no sheet music.
"""

import json
import sys
from pathlib import Path

from rlmusic.files import atomic_write_text

OPTIONS = {"inputFrom": "abc", "pageHeight": 60000, "adjustPageHeight": True, "pageWidth": 2100, "scale": 40,
           "header": "auto", "footer": "none", "breaks": "auto"}


def main() -> None:
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    for i, (text, path) in enumerate(json.load(sys.stdin)):
        tk = verovio.toolkit()
        tk.setOptions(OPTIONS)
        if not (tk.loadData(text + "\n") and tk.getPageCount() >= 1):
            print(f"fail {i} verovio could not read the ABC", flush=True)
            continue
        try:
            atomic_write_text(Path(path), tk.renderToSVG(1))
        except OSError as exc:
            print(f"fail {i} cannot write {path}: {exc.strerror or exc}", flush=True)
            continue
        print(f"done {i}", flush=True)


if __name__ == "__main__":
    main()

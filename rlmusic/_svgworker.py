"""Child process that engraves ABC to SVG with verovio.

verovio can abort the whole process on malformed ABC (a C++ exception escaping), so sampled tunes are engraved
here, never in the caller's process. Input on stdin: JSON list of [abc_text, svg_path]. For each item it writes
the SVG (atomically) or nothing, then prints `done N` and flushes, so the parent knows where a crash happened.
"""

import json
import sys

from rlmusic.rundir import atomic_write_text

OPTIONS = {"inputFrom": "abc", "pageHeight": 60000, "adjustPageHeight": True, "pageWidth": 2100, "scale": 40,
           "header": "auto", "footer": "none", "breaks": "auto"}


def main() -> None:
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    for i, (text, path) in enumerate(json.load(sys.stdin)):
        tk = verovio.toolkit()
        tk.setOptions(OPTIONS)
        if tk.loadData(text + "\n") and tk.getPageCount() >= 1:
            atomic_write_text(__import__("pathlib").Path(path), tk.renderToSVG(1))
        print(f"done {i}", flush=True)


if __name__ == "__main__":
    main()

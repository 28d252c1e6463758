"""The metrics table of `evaluate` and its report: one model (rows of metrics, a column per evaluated source),
rendered as Markdown for the terminal and the docs, and as HTML for the report."""

from __future__ import annotations

import html

from rlmusic import realness

METRIC_KEYS = ("valid_rate", "notes_not_in_key", "notes_excessively_repeated", "starts_with_tonic",
               "ends_with_tonic", "leaps_resolved", "unique_max_note", "unique_min_note", "notes_in_repeated_motif",
               "autocorrelation_lag1", "autocorrelation_lag2", "autocorrelation_lag3", "pitch_class_entropy",
               "scale_consistency", "two_strain_tunes", "second_strain_answers",
               # form (rlmusic/realness.py: form)
               "repeat_sign_tunes", "aabb_tunes", "meter_consistent_tunes", "bar_patterns_per_1000",
               "top15_bar_pattern_share")
# with --data: the distance from real held-out tunes as a whole (rlmusic/realness.py)
REALNESS_KEYS = ("discriminator_text", "discriminator_text_std", "discriminator_features",
                 "discriminator_features_std", "feature_overlap", "feature_kl",
                 *(f"overlap/{f}" for f in (*realness.FEATURES, "note_lengths")),
                 *(f"kl/{f}" for f in (*realness.FEATURES, "note_lengths")),
                 "key_mode_tv", "meter_tv", "exact_copies", "distinct_bars", "duplicate_tunes")


def table_rows(columns: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the table: a row per metric any column has, the cells formatted to 3 decimals."""
    extra = sorted({k for c in columns.values() for k in c if k.startswith(("rewards/", "copies_"))})
    keys = [k for k in (*METRIC_KEYS, "mean_notes", "kl_to_reference", "nll_bits_per_char", *REALNESS_KEYS, *extra)
            if any(k in c and c[k] is not None for c in columns.values())]
    rows = []
    if any("constrain" in c for c in columns.values()):  # how the models' tunes were drawn
        rows.append(["constrain", *(c.get("constrain", "") for c in columns.values())])
    for k in keys:
        rows.append([k, *("" if c.get(k) is None else f"{c[k]:.3f}" for c in columns.values())])
    return ["metric", *columns], rows


def markdown_table(columns: dict[str, dict]) -> str:
    """Metrics as rows, one column per evaluated source (model or corpus)."""
    head, rows = table_rows(columns)
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def html_table(columns: dict[str, dict]) -> str:
    """The same table as HTML, every cell escaped."""
    head, rows = table_rows(columns)
    lines = ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"]
    lines += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
    return "<table>\n" + "\n".join(lines) + "\n</table>"

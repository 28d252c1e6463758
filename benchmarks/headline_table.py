"""The README's before/after table of fine-tuning, from a `reward_designs.py` results file.

    python benchmarks/headline_table.py benchmarks/results/music_odds_to120.json

Columns: every column of the file in its order (the corpus, the shipped model, each design and its copy resumed
to N iterations, `DESIGN@N`), the default preset's (`music_odds`) named as the README names it; each cell the mean
+- standard deviation over the seeds.
"""
import json
import sys

from reward_designs import cell  # benchmarks/ is on sys.path: this script's folder

d = json.load(open(sys.argv[1]))
rows = [("valid (abc2midi)", "valid_rate", 3), ("ends on the tonic", "ends_with_tonic", 3),
        ("starts on the tonic", "starts_with_tonic", 3),
        ("notes in a repeated motif", "notes_in_repeated_motif", 3), ("leaps resolved", "leaps_resolved", 3),
        ("two-strain tunes", "two_strain_tunes", 3), ("AABB tunes", "aabb_tunes", 3),
        ("notes not in key", "notes_not_in_key", 3), ("notes excessively repeated", "notes_excessively_repeated", 3),
        ("`discriminator_text` (0.5 = real)", "discriminator_text", 3),
        ("`discriminator_features`", "discriminator_features", 3), ("mean notes", "mean_notes", 1),
        ("KL to the shipped model (nats/char)", "kl_to_reference", 3)]
cols = [c for c, v in d.items() if isinstance(v, list)]
names = {"corpus": "corpus", "pretrained": "shipped model", "music_odds": "default, 60 it.", "music_odds@120": "resumed to 120"}
print("| metric | " + " | ".join(names.get(c, c.replace("@", " @")) for c in cols) + " |")
print("|---|" + "---:|" * len(cols))
for label, key, nd in rows:
    cells = [cell([r.get(key) for r in d[c]], nd) for c in cols]
    print(f"| {label} | " + " | ".join(cells) + " |")

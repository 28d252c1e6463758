"""MkDocs hooks: the site's home page is README.md, its links rewritten for the site (one text, never two)."""

from pathlib import Path


def on_page_read_source(page, config):
    if page.file.src_uri != "index.md":
        return None
    text = (Path(config["config_file_path"]).parent / "README.md").read_text(encoding="utf-8")
    text = text.replace("](docs/images/", "](images/").replace("](docs/", "](")
    text = text.replace("](rlmusic/pretrained/folk/MODEL_CARD.md)", "](model-card.md)")
    return text.replace("The documentation site, `docs/`", "This site, built from `docs/`")

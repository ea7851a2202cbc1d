"""The built book's pages, in the order of _toc.yml: what the HTML and browser tests visit."""
from pathlib import Path

import yaml


def toc_files(toc_path: str | Path = "_toc.yml") -> list[str]:
    toc = yaml.safe_load(Path(toc_path).read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [c["file"] for c in part["chapters"]]
    return files

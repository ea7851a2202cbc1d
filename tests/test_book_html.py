"""The built HTML book (`make book`): a page per chapter, every figure it references, launch buttons, math."""
import os
import re
from pathlib import Path

import pytest

from book_pages import toc_files

HTML = Path("_build/html")
if not HTML.is_dir():
    if os.environ.get("CI"):
        raise RuntimeError("_build/html is missing: CI runs `make book` before the tests")
    pytest.skip("the book is not built (run `make book`)", allow_module_level=True)




@pytest.mark.parametrize("page", toc_files())
def test_every_page_is_built_and_its_images_exist(page):
    path = HTML / f"{page}.html"
    assert path.is_file(), f"{path} was not built"
    html = path.read_text(encoding="utf-8")
    for src in re.findall(r'<img[^>]+src="([^"]+)"', html):
        if src.startswith(("http:", "https:", "data:")):
            continue
        assert (path.parent / src).resolve().is_file(), f"{page}: image {src} is missing"


def test_chapters_with_figures_have_images():
    for page in ("notebooks/01_se_block", "notebooks/09_ablations", "notebooks/10_role_of_se"):
        html = (HTML / f"{page}.html").read_text(encoding="utf-8")
        assert "<img" in html, f"{page} shows no figure"


def test_launch_buttons_and_local_mathjax():
    html = (HTML / "notebooks" / "01_se_block.html").read_text(encoding="utf-8")
    assert "colab.research.google.com" in html and "mybinder.org" in html
    scripts = [s.split("?")[0] for s in re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', html, flags=re.I)]
    assert len(scripts) == 1 and not scripts[0].startswith("http"), scripts     # one local MathJax, no CDN
    assert (HTML / "notebooks" / scripts[0]).resolve().is_file()


def test_tables_are_rendered_as_tables():
    html = (HTML / "notebooks" / "09_ablations.html").read_text(encoding="utf-8")
    assert html.count("<table") >= 6

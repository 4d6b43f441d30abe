"""Create a chapter notebook skeleton with the course's locked setup cell.

Usage: python scripts/new_chapter.py book/NN_name.ipynb "Title" "lmcourse.module"

The setup cell is the same in every chapter and homework notebook; tests/test_notebooks.py
checks that it is exactly ``SETUP_CELL`` and that its install URL is the repository URL set
in _config.yml. ``LMCOURSE_INSTALL`` (a wheel, a local path or another pip URL) replaces the
default source; scripts/colab_check.py sets it to the freshly built wheel.
"""

from __future__ import annotations

import sys

import nbformat

REPO_URL = "https://github.com/lmcourse-org/lmcourse"

SETUP_CELL = f'''# Setup (the same in every notebook). On Colab, or wherever LMCOURSE_INSTALL names a wheel,
# path or URL, this installs lmcourse (keeping the runtime's torch) and turns on Colab's
# widget manager for the explorers; then it picks the device and seeds everything.
import os
import sys

COLAB = "google.colab" in sys.modules
if COLAB or "LMCOURSE_INSTALL" in os.environ:
    install_from = os.environ.get("LMCOURSE_INSTALL", "lmcourse @ git+{REPO_URL}")
    %pip install -q "{{install_from}}"
if COLAB:
    from google.colab import output

    output.enable_custom_widget_manager()

import lmcourse

device = lmcourse.setup(seed=0)'''


def make(path: str, title: str, module: str) -> None:
    """Write a notebook with a title, the setup cell and a pointer to ``module``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {title}\n\nThis chapter teaches `{module}`."),
        nbformat.v4.new_code_cell(SETUP_CELL, metadata={"tags": ["setup"]}),
    ]
    nbformat.write(nb, path)


if __name__ == "__main__":
    make(*sys.argv[1:4])

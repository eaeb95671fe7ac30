"""Build notebooks/*.ipynb from the percent-format sources in notebooks/_src/.

Each source is a Python file whose cells start with ``# %%`` (code) or
``# %% [markdown]`` (markdown; every line starts with ``# ``).  The .ipynb
files are written without outputs; tests/test_notebooks.py executes them.

    python notebooks/build_notebooks.py            # rebuild all
    python notebooks/build_notebooks.py 00_tour    # rebuild one
"""
import pathlib
import sys

import nbformat

HERE = pathlib.Path(__file__).resolve().parent


def parse(text):
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif body.strip():
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(src):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = parse(src.read_text())
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what the source changed
        cell.id = f"{src.stem[:2]}-{i:02d}"
    out = HERE / (src.stem + ".ipynb")
    nbformat.write(nb, str(out))
    return out


if __name__ == "__main__":
    names = sys.argv[1:]
    for src in sorted((HERE / "_src").glob("*.py")):
        if not names or src.stem in names:
            print("wrote", build(src).relative_to(HERE.parent))

"""Every citation key used in the package, README, docs and notebook sources is
defined in docs/references.md, with authors, year, title, venue and arXiv id;
no text points readers to files they do not have (papers.md, DESIGN)."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFS = os.path.join(ROOT, "docs", "references.md")
KEY = re.compile(r"\[([A-Z][A-Za-z]+[0-9]{4}[a-z]?)\]")
STALE = re.compile(r"papers\.md|\bDESIGN\b|papers A[0-9]")


def scanned_files():
    pats = ["attnnorm/**/*.py", "attnnorm/**/*.pyi", "README.md", "docs/**/*.md",
            "notebooks/_src/**/*.py"]
    files = set()
    for p in pats:
        files.update(glob.glob(os.path.join(ROOT, p), recursive=True))
    return sorted(files)


def defined_keys():
    rows = {}
    for line in open(REFS, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and KEY.fullmatch(cells[0]):
            rows[KEY.fullmatch(cells[0]).group(1)] = cells
    return rows


def test_reference_list_entries_are_complete():
    rows = defined_keys()
    assert len(rows) >= 20
    for key, (_, authors, year, title, venue, arxiv) in rows.items():
        assert authors and title and venue, key
        assert re.fullmatch(r"(19|20)[0-9]{2}", year), (key, year)
        assert key[-4:] == year or key[-5:-1] == year, (key, year)
        assert re.fullmatch(r"[0-9]{4}\.[0-9]{4,5}", arxiv), (key, arxiv)


def test_every_cited_key_is_in_the_reference_list():
    known = set(defined_keys())
    missing = {}
    for fn in scanned_files():
        for key in KEY.findall(open(fn, encoding="utf-8").read()):
            if key not in known:
                missing.setdefault(key, []).append(os.path.relpath(fn, ROOT))
    assert not missing, f"citation keys missing from docs/references.md: {missing}"


def test_no_pointers_to_files_users_do_not_have():
    bad = []
    for fn in scanned_files():
        if os.path.abspath(fn) == os.path.abspath(__file__):
            continue
        for i, line in enumerate(open(fn, encoding="utf-8"), 1):
            if STALE.search(line):
                bad.append(f"{os.path.relpath(fn, ROOT)}:{i}: {line.strip()}")
    assert not bad, "mentions of papers.md / DESIGN:\n" + "\n".join(bad)


def test_the_scanner_sees_citations():
    """The scan is not vacuous: the package and the README cite keys."""
    cited = set()
    for fn in scanned_files():
        cited.update(KEY.findall(open(fn, encoding="utf-8").read()))
    assert {"Peters2019", "Sander2021", "Richter2020", "Mudarisov2025"} <= cited

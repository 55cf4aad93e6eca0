"""RESULTS.md marks a result as stale when the library changed after the commit that measured it."""

import subprocess

import pytest

from benchmarks._common import library_changes_since, neutral_reason, split_neutral


def _git(repo, *args):
    return subprocess.check_output(["git", *args], cwd=repo, text=True).strip()


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    for key, value in (("user.email", "t@example.org"), ("user.name", "t"), ("commit.gpgsign", "false")):
        _git(tmp_path, "config", key, value)
    (tmp_path / "clinfusion").mkdir()
    (tmp_path / "clinfusion" / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "measured here")
    return tmp_path


def _commit(repo, path, text, message):
    """Write ``text`` to ``repo/path``, commit it; the new commit's short hash."""
    (repo / path).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "--short", "HEAD")


def test_docs_only_commits_leave_a_result_current(repo):
    measured = _git(repo, "rev-parse", "--short", "HEAD")
    _commit(repo, "README.md", "docs\n", "docs")
    assert library_changes_since(measured, repo) == []


def test_a_library_commit_makes_it_stale_and_is_named(repo):
    measured = _git(repo, "rev-parse", "--short", "HEAD")
    code = _commit(repo, "clinfusion/a.py", "x = 2\n", "code")
    assert library_changes_since(measured, repo) == [code]
    assert library_changes_since(code, repo) == []  # re-run at HEAD: current again
    assert library_changes_since("0000000", repo) == []  # an unknown commit claims nothing


def test_a_change_and_its_revert_leave_the_result_current(repo):
    measured = _git(repo, "rev-parse", "--short", "HEAD")
    changed = _commit(repo, "clinfusion/a.py", "x = 2  # reworded\n", "change")
    assert library_changes_since(measured, repo) == [changed]
    _commit(repo, "clinfusion/a.py", "x = 1\n", "revert")
    assert library_changes_since(measured, repo) == []  # the library is as measured: no number can move


def test_a_commit_checked_neutral_is_named_not_stale(repo):
    """A library commit listed as changing no benchmark number (benchmarks._common.RESULT_NEUTRAL)
    does not make a result stale; a later unlisted one still does."""
    measured = _git(repo, "rev-parse", "--short", "HEAD")
    logging_only = _commit(repo, "clinfusion/a.py", "x = 1  # logs more\n", "logging only")
    table = {logging_only[:7]: "changes only what a resumed run logs"}
    assert split_neutral(library_changes_since(measured, repo), table) == ([], [logging_only])
    assert neutral_reason(logging_only, table) == "changes only what a resumed run logs"
    code = _commit(repo, "clinfusion/a.py", "x = 2\n", "code")
    assert split_neutral(library_changes_since(measured, repo), table) == ([code], [logging_only])


def test_every_listed_neutral_commit_changes_the_library():
    """Each entry of RESULT_NEUTRAL names a commit of this repository that touches the library (an entry
    for a docs commit, or a mistyped hash, would be a claim about nothing)."""
    from benchmarks._common import HERE, LIBRARY_PATHS, RESULT_NEUTRAL

    try:
        shallow = _git(HERE.parent, "rev-parse", "--is-shallow-repository") == "true"
    except Exception:
        pytest.skip("not a git checkout")
    if shallow:
        pytest.skip("a shallow clone lacks the listed commits")
    for commit, reason in RESULT_NEUTRAL.items():
        assert reason.strip()
        touched = _git(HERE.parent, "show", "--name-only", "--format=", commit, "--", *LIBRARY_PATHS)
        assert touched, f"{commit} touches none of {LIBRARY_PATHS}"

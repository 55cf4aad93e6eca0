"""RESULTS.md marks a result as stale when the library changed after the commit that measured it."""

import subprocess

import pytest

from benchmarks._common import library_changes_since


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

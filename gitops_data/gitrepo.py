"""Git I/O for the data repository (gitpython): resolve refs, list branches, walk history."""

from __future__ import annotations

import contextlib
import fnmatch
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gitops_data.errors import GitError, NotADataRepo
from gitops_data.project.dbt.project import PROJECT_FILE as DBT_PROJECT_FILE
from gitops_data.project.schema import SETTINGS_FILE

if TYPE_CHECKING:
    import git


@contextlib.contextmanager
def open_repo(path: str) -> Iterator[git.Repo]:
    """A Repo that is closed afterwards (long-lived processes otherwise pile up `git cat-file`)."""
    import git  # on first use: `validate DIR` reads no repository

    try:
        repo = git.Repo(path)
    except (git.exc.NoSuchPathError, git.exc.InvalidGitRepositoryError) as exc:
        raise GitError(
            f"{path} is not a Git repository ({type(exc).__name__}); pass --repo or set GITOPS_DATA_REPO"
        ) from None
    try:
        yield repo
    finally:
        repo.close()


def ensure_data_repo(path: str) -> None:
    """Raise NotADataRepo unless HEAD of the repo at `path`, or a commit before it, has
    gitops_data.yaml or dbt_project.yml at the root.

    Checked before a command reads or changes anything, so that a command run in the wrong folder
    (the gitops-data checkout itself, say) does not read some other repository as the data repo.
    Asks `git` itself (GitPython costs a cold `validate` a tenth of a second to import), except
    for what is not a work tree's root: GitPython's verdict and message then.
    """
    markers = (SETTINGS_FILE, DBT_PROJECT_FILE)
    root = _git(path, "rev-parse", "--is-bare-repository", "--show-prefix")
    if root is None or root.split() != ["false"]:
        with open_repo(path):  # GitError if it is no repository (or a folder inside one)
            pass
        return _ensure_data_repo_gitpython(path, markers)
    head = _git(path, "rev-parse", "--quiet", "--verify", "HEAD^{commit}")
    if head is None:
        raise _no_commits(path)
    head = head.strip()
    # a commit that removed the file is the data repo's invalid commit (validate says so), not
    # another repository: so HEAD's history counts, not only HEAD
    if _git(path, "ls-tree", "--name-only", head, "--", *markers) or _git(
        path, "log", "-1", "--format=%h", head, "--", *markers
    ):
        return None
    raise _not_a_data_repo(path, head)


def _git(path: str, *args: str) -> str | None:
    """`git -C path args...`'s output, or None if it failed."""
    try:
        done = subprocess.run(["git", "-C", path, *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _ensure_data_repo_gitpython(path: str, markers: tuple[str, str]) -> None:
    with open_repo(path) as repo:
        try:
            head = repo.head.commit.hexsha
        except ValueError:
            raise _no_commits(path) from None
        if repo.git.ls_tree("--name-only", head, "--", *markers) or repo.git.log(
            "-1", "--format=%h", head, "--", *markers
        ):
            return
    raise _not_a_data_repo(path, head)


def _no_commits(path: str) -> NotADataRepo:
    return NotADataRepo(
        f"{path} is not a data repo yet: it has no commits. Commit a {SETTINGS_FILE} (or a dbt "
        "project), or point GITOPS_DATA_REPO (or --repo) at the data repo"
    )


def _not_a_data_repo(path: str, head: str) -> NotADataRepo:
    return NotADataRepo(
        f"{path} is not a data repo: no commit of its HEAD ({head[:10]}) has {SETTINGS_FILE} or "
        f"{DBT_PROJECT_FILE} at the root. Point GITOPS_DATA_REPO (or --repo) at the data repo"
    )


def resolve(path: str, ref: str) -> str:
    """The commit SHA that `ref` (branch, tag, SHA, HEAD~1, ...) points to."""
    if not ref or ref.startswith("-"):
        raise GitError(f"invalid ref {ref!r}")
    import git

    with open_repo(path) as repo:
        try:
            return repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}").strip()
        except git.exc.GitCommandError:
            raise GitError(f"ref {ref!r} does not exist in {path}") from None


def branch_heads(path: str, pattern: str | list[str] = "*") -> dict[str, str]:
    """Local branch -> head SHA, for branches matching the fnmatch `pattern` (or any of several) (one
    git call)."""
    patterns = [pattern] if isinstance(pattern, str) else pattern
    with open_repo(path) as repo:
        out = repo.git.for_each_ref("refs/heads", "--format=%(refname:short)%00%(objectname)")
    heads = {}
    for line in out.splitlines():
        name, _, sha = line.partition("\x00")
        if name and any(fnmatch.fnmatchcase(name, p) for p in patterns):
            heads[name] = sha
    return heads


def first_parents(path: str, sha: str, limit: int = 50) -> list[str]:
    """`sha` and its first-parent ancestors, newest first."""
    with open_repo(path) as repo:
        return repo.git.rev_list("--first-parent", f"--max-count={limit}", sha).split()


def is_branch(path: str, ref: str) -> bool:
    with open_repo(path) as repo:
        return any(h.name == ref for h in repo.heads)


def read_file(path: str, sha: str, file: str) -> bytes:
    """One file's bytes as of commit `sha` (never the working tree; symbolic links refused)."""
    import stat

    from gitops_data.project.tree import normalize

    with open_repo(path) as repo:
        try:
            blob = repo.commit(sha).tree / normalize(file)
        except KeyError:
            raise GitError(f"{file} does not exist at commit {sha[:10]}") from None
        if stat.S_ISLNK(blob.mode):
            raise GitError(f"{file} is a symbolic link at commit {sha[:10]}; links are not followed")
        return blob.data_stream.read()

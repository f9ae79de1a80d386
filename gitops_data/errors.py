"""Exception classes. Every error a user can cause is one of these, with a message they can act on."""

from __future__ import annotations

from dataclasses import dataclass


class GitopsError(Exception):
    """Base class; the CLI prints the message (no traceback) and exits with `exit_code`."""

    exit_code = 1


@dataclass(frozen=True)
class Issue:
    """One problem found in a project: where it is and what is wrong."""

    file: str
    message: str
    line: int | None = None
    model: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        who = f" [{self.model}]" if self.model else ""
        return f"{where}{who}: {self.message}"


class ProjectError(GitopsError):
    """The project at a commit is invalid; carries every issue found, not only the first."""

    exit_code = 2

    def __init__(self, issues: list[Issue], where: str = "project"):
        self.issues = list(issues)
        lines = "\n".join(f"  - {i}" for i in self.issues)
        super().__init__(f"{where} is invalid ({len(self.issues)} error(s)):\n{lines}")


class GitError(GitopsError):
    """The data repository or one of its refs cannot be read."""


class NotADataRepo(GitError):
    """The Git repository a command was pointed at holds no gitops-data or dbt project."""


class IdentifierError(GitopsError):
    """A name (model, branch, column) cannot be mapped to a safe identifier."""


class SqlError(GitopsError):
    """A model's SQL cannot be parsed or does something a model may not do."""

    def __init__(self, message: str, sql_line: int | None = None):
        super().__init__(message)
        self.sql_line = sql_line  # the line within the SQL text, when the parser knows it


class UnknownEngine(GitopsError, ValueError):
    """A warehouse location whose URL scheme no engine has."""


class LeaseLost(GitopsError):
    """This process's lease on the warehouse expired (its heartbeat stopped) and another took it."""


class WarehouseBusy(GitopsError):
    """The warehouse lock could not be taken in time."""

    exit_code = 5


class BuildError(GitopsError):
    """Building a model failed (SQL error, Python error, wrong return type)."""

    exit_code = 4


class PublishBlocked(GitopsError):
    """Blocking checks failed; nothing was published."""

    exit_code = 3


class Superseded(GitopsError):
    """The ref moved on while this commit was being built; the newer commit wins."""

    exit_code = 6


class DriftFound(GitopsError):
    """The warehouse differs from what gitops-data published (changed outside Git)."""

    exit_code = 7


class PublishConflict(GitopsError):
    """A publish cannot change the warehouse without harming an object gitops-data does not own
    (a user's view depending on a published view), or readers held a view past every retry."""

    exit_code = 5

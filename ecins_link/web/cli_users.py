"""The ``users`` CLI commands' logic (cli.py only parses arguments)."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from ecins_link.web.users import UserRow


def _setup(project: Path):  # noqa: ANN202
    from ecins_link.web import setup

    return setup.configure(project)


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice at a prompt (never an argument: shell history)."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise ValueError("--password-stdin: nothing on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ValueError("the two passwords differ")
    return first


def add(project: Path, name: str, role: str, purpose: str | None, password_stdin: bool) -> None:
    from ecins_link.web.users import add_user

    config = _setup(project)
    add_user(config, name, role, purpose, read_password(password_stdin))


def rows(project: Path) -> list[UserRow]:
    from ecins_link.web.users import list_users

    _setup(project)
    return list_users()


def disable(project: Path, name: str) -> None:
    from ecins_link.web.users import disable_user

    _setup(project)
    disable_user(name)

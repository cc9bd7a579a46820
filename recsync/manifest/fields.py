"""Typed reads of manifest values that record every problem instead of raising.

Each problem is one line: ``<path>: <value> <what is wrong>; <fix>``. A reader that
finds a bad value records the problem, marks the key invalid and returns a
placeholder, so validation can go on and report every problem of a file at once. The
caller raises :class:`~recsync.errors.ManifestError` when the report is not empty, so
placeholders never reach a model.

Written by hand rather than with cattrs: cattrs stops at the first error of a class
unless detailed validation is on, and even then its messages name the Python type
("invalid value for type, expected int") instead of the fix. The checks here also need
the YAML spelling of values (``true``, ``null``), a did-you-mean for unknown keys and
values hidden where they may be secrets.
"""

from __future__ import annotations

import datetime
import difflib
import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

import attrs

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_NUMBER = 1_000_000_000
"""Largest number any field accepts, so that arithmetic on it stays exact."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_MAX_SHOWN_CHARS = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Missing:
    """Marker for a key that is absent or null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()


def show(value: object) -> str:
    """Render a value for a message as YAML spells it, on one short line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) > 10**_MAX_SHOWN_CHARS:
        text = "a very large integer"
    elif isinstance(value, int | float | str):
        text = repr(value)
    elif isinstance(value, datetime.date):
        text = value.isoformat()
    elif isinstance(value, list | tuple):
        text = "[...]"
    elif isinstance(value, Mapping):
        text = "{...}"
    else:
        text = type(value).__name__
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[: _MAX_SHOWN_CHARS - 3] + "..."
    return text


def hidden(value: object) -> str:
    """Stand-in for a value that may be a secret: its length, never its text."""
    if isinstance(value, str):
        return f"<hidden, {len(value)} characters>"
    return "<hidden>"


def type_name(value: object) -> str:
    """Name the YAML type of a value with its article, such as ``a string``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime.datetime):
        return "a timestamp"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


def join_path(path: str, key: object) -> str:
    """Append a mapping key to a path: ``policies`` + ``retry`` = ``policies.retry``."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{show(key)}]"


def index_path(path: str, index: int) -> str:
    """Append a list index to a path: ``orgs`` + 1 = ``orgs[1]``."""
    return f"{path}[{index}]"


def is_env_name(text: str) -> bool:
    """Return whether ``text`` is a valid environment variable name."""
    return _ENV_NAME.fullmatch(text) is not None


def suggest(word: str, choices: Collection[str]) -> str | None:
    """Return the choice closest to ``word``, or None when none is close."""
    by_lower = {choice.lower(): choice for choice in choices}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1)
    return by_lower[matches[0]] if matches else None


@attrs.define
class Report:
    """Problems found so far, and the paths whose values must not be shown."""

    problems: list[str] = attrs.Factory(list)
    secret_paths: set[str] = attrs.Factory(set)
    """Paths already reported as inline secrets, which readers skip without a report."""

    def add(self, path: str, message: str) -> None:
        """Record one problem at ``path``."""
        line = f"{path or 'document'}: {message}"
        if line not in self.problems:
            self.problems.append(line)


def _number_problem(value: object, example: str) -> str | None:
    """Return the problem with a value that must be a finite number, or None."""
    if isinstance(value, bool):
        return (
            f"{show(value)} is a boolean, expected a number; "
            f"write a number such as {example}"
        )
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            parsed = math.nan
        if math.isfinite(parsed):
            return f"{show(value)} is a string, expected a number; remove the quotes"
        return f"{show(value)} is not a number; write a number such as {example}"
    if not isinstance(value, int | float):
        return (
            f"{show(value)} is {type_name(value)}, expected a number; "
            f"write a number such as {example}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return f"{show(value)} is not a finite number; write a number such as {example}"
    if abs(value) > MAX_NUMBER:
        return f"{show(value)} is too large; use at most {MAX_NUMBER:,}"
    return None


class Section:
    """A mapping of the manifest read at ``path``, reporting into ``report``.

    Creating a section reports the keys that are not in ``allowed``.
    """

    def __init__(
        self,
        data: Mapping[Any, Any],
        path: str,
        report: Report,
        *,
        allowed: Sequence[str],
    ) -> None:
        self.data = data
        self.path = path
        self.report = report
        self.invalid: set[str] = set()
        self._check_keys(allowed)

    def _check_keys(self, allowed: Sequence[str]) -> None:
        for key in self.data:
            if isinstance(key, str) and key in allowed:
                continue
            path = join_path(self.path, key)
            if path in self.report.secret_paths:
                continue
            self.report.add(path, self._unknown_key_message(key, allowed))

    @staticmethod
    def _unknown_key_message(key: object, allowed: Sequence[str]) -> str:
        if isinstance(key, str):
            match = suggest(key, allowed)
            if match is not None:
                return f"unknown key; did you mean {match!r}?"
        return f"unknown key; remove it or use one of: {', '.join(allowed)}"

    def key_path(self, key: str) -> str:
        """Path of ``key`` inside this section."""
        return join_path(self.path, key)

    def valid(self, *keys: str) -> bool:
        """Return whether every key given was read without a problem."""
        return not self.invalid.intersection(keys)

    def fail(self, key: str, message: str) -> None:
        """Record a problem with ``key`` and mark it invalid."""
        self.invalid.add(key)
        self.report.add(self.key_path(key), message)

    def raw(self, key: str, *, required: bool = False, example: str = "") -> Any:
        """Return the value of ``key``, or MISSING when it is absent or null.

        A required key that is absent is reported, with ``example`` as the fix.
        """
        if self.key_path(key) in self.report.secret_paths:
            self.invalid.add(key)
            return MISSING
        value = self.data.get(key)
        if value is None:
            if required:
                present = key in self.data
                state = "is empty (null)" if present else "required key is missing"
                self.fail(key, f"{state}; add it, such as {key}: {example}")
            return MISSING
        return value

    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float = 0.0,
        inclusive: bool = False,
        fix: str | None = None,
    ) -> float:
        """Read a finite number greater than ``minimum`` (or equal when inclusive).

        ``fix`` replaces the default advice for a value below the minimum.
        """
        value = self.raw(key)
        if value is MISSING:
            return default
        example = f"{default:g}"
        problem = _number_problem(value, example)
        if problem is None:
            below = value < minimum or (value == minimum and not inclusive)
            if below:
                relation = "at least" if inclusive else "greater than"
                advice = fix or f"use a number of seconds such as {example}"
                problem = f"{show(value)} must be {relation} {minimum:g}; {advice}"
        if problem is not None:
            self.fail(key, problem)
            return default
        return float(value)

    def duration(self, key: str, default: float) -> float:
        """Read a duration in seconds, which must be greater than 0."""
        return self.number(key, default)

    def ratio(self, key: str, default: float, *, allow_one: bool = False) -> float:
        """Read a fraction in (0, 1), or in (0, 1] when ``allow_one``."""
        value = self.raw(key)
        if value is MISSING:
            return default
        example = f"{default:g}"
        problem = _number_problem(value, example)
        if problem is None:
            too_big = value > 1 or (value == 1 and not allow_one)
            if value <= 0 or too_big:
                interval = "(0, 1]" if allow_one else "(0, 1)"
                problem = (
                    f"{show(value)} is outside {interval}; write a fraction such as "
                    f"{example} for {default * 100:g} %"
                )
        if problem is not None:
            self.fail(key, problem)
            return default
        return float(value)

    def count(
        self,
        key: str,
        default: int,
        *,
        maximum: int | None = None,
        maximum_reason: str = "",
    ) -> int:
        """Read a whole number of at least 1 and at most ``maximum``."""
        value = self.raw(key)
        if value is MISSING:
            return default
        problem = _number_problem(value, str(default))
        if problem is None and not isinstance(value, int):
            problem = (
                f"{show(value)} is not a whole number; write one such as {default}"
            )
        elif problem is None and value < 1:
            problem = f"{show(value)} must be at least 1; use a count such as {default}"
        elif problem is None and maximum is not None and value > maximum:
            problem = (
                f"{show(value)} is over the maximum of {maximum}{maximum_reason}; "
                f"use 1 to {maximum}"
            )
        if problem is not None:
            self.fail(key, problem)
            return default
        return int(value)

    def boolean(self, key: str, default: bool) -> bool:
        """Read ``true`` or ``false``."""
        value = self.raw(key)
        if value is MISSING:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            fix = "remove the quotes"
        else:
            fix = f"write true or false, such as {key}: {show(default)}"
        self.fail(
            key, f"{show(value)} is {type_name(value)}, expected true or false; {fix}"
        )
        return default

    def text(
        self, key: str, default: str, *, required: bool = False, example: str = ""
    ) -> str:
        """Read a non-empty string on one line."""
        value = self.raw(key, required=required, example=example)
        if value is MISSING:
            return default
        if not isinstance(value, str):
            self.fail(
                key,
                f"{show(value)} is {type_name(value)}, expected a string; "
                f"quote it, such as {key}: '{example or value}'",
            )
            return default
        if not value.strip():
            self.fail(
                key, f"{show(value)} is blank; write a value such as {key}: {example}"
            )
            return default
        if _CONTROL.search(value):
            self.fail(
                key,
                f"{show(value)} contains a line break or control character; "
                "write it on one line",
            )
            return default
        return value.strip()

    def choice(
        self,
        key: str,
        choices: Mapping[str, _T],
        default: _T,
        *,
        noun: str,
        required: bool = False,
    ) -> _T:
        """Read one of the strings in ``choices`` and return its mapped value."""
        names = ", ".join(choices)
        value = self.raw(key, required=required, example=next(iter(choices)))
        if value is MISSING:
            return default
        if isinstance(value, str) and value in choices:
            return choices[value]
        hint = ""
        if isinstance(value, str):
            match = suggest(value, list(choices))
            hint = f"did you mean {match!r}? " if match else ""
            reason = f"is not a known {noun}"
        else:
            reason = f"is {type_name(value)}, expected a {noun} name"
        self.fail(key, f"{show(value)} {reason}; {hint}use one of: {names}")
        return default

    def env_name(self, key: str, *, required: bool, example: str) -> str | None:
        """Read the name of an environment variable.

        The value is hidden in messages, because a bad name is often a secret pasted
        in place of the name.
        """
        value = self.raw(key, required=required, example=example)
        if value is MISSING:
            return None
        if not isinstance(value, str):
            self.fail(
                key,
                f"{hidden(value)} is {type_name(value)}, expected the name of an "
                f"environment variable; write a name such as {key}: {example}",
            )
            return None
        if not is_env_name(value):
            self.fail(
                key,
                f"{hidden(value)} is not a valid environment variable name; use "
                "letters, digits and '_', not starting with a digit, such as "
                f"{example}",
            )
            return None
        return value

    def mapping(
        self, key: str, *, required: bool = False, example: str = ""
    ) -> Mapping[Any, Any] | None:
        """Read a nested mapping, or return None when it is absent or invalid."""
        value = self.raw(key, required=required, example=example)
        if value is MISSING:
            return None
        if not isinstance(value, Mapping):
            self.fail(
                key, f"{show(value)} is {type_name(value)}, expected a mapping of keys"
            )
            return None
        return value

    def section(
        self,
        key: str,
        *,
        allowed: Sequence[str],
        required: bool = False,
        example: str = "",
    ) -> Section:
        """Read a nested mapping as a section, empty if the key is absent or invalid."""
        value = self.mapping(key, required=required, example=example)
        return Section(value or {}, self.key_path(key), self.report, allowed=allowed)

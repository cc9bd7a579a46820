"""Reading a manifest file or text into a validated Manifest.

Parsing uses a subclass of PyYAML's ``SafeLoader``, the loader behind
``yaml.safe_load``, so only plain YAML types are built. The subclass adds what
``safe_load`` lacks for untrusted files: a size limit, a nesting limit, a limit on the
values that aliases expand to (a "billion laughs" document), rejection of recursive
aliases and detection of duplicate keys. The pure-Python loader is used rather than
libyaml's ``CSafeLoader`` because libyaml composes the document in C, where these
checks cannot hook in.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from recsync.errors import ManifestError
from recsync.manifest.fields import Report, index_path, join_path, show
from recsync.manifest.models import Manifest
from recsync.manifest.validation import MAX_DEPTH, MAX_VALUES, build_manifest

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 1024 * 1024
"""Largest manifest accepted, in bytes (1 MiB)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
# "!" is the non-specific tag of a quoted scalar, which PyYAML reports as explicit.
_ALLOWED_TAGS = frozenset(
    {"!", "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}
)
_CONSTRUCTOR_FIX = (
    "write plain YAML values only: strings, numbers, booleans, lists and mappings "
    "with string keys"
)
_SYNTAX_FIX = (
    "fix the YAML near that position, such as the indentation, a missing ':' "
    "after a key or an unclosed quote or bracket"
)


class _DocumentRejected(Exception):
    """A document that must not be built, with the path and message of the problem."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader that stops composing at ``MAX_DEPTH`` levels of nesting.

    PyYAML composes nested nodes by recursion, so a deep document would otherwise
    end in RecursionError.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            event = self.peek_event()
            if self._depth > MAX_DEPTH:
                raise _DocumentRejected(
                    _position(event.start_mark),
                    f"values are nested deeper than {MAX_DEPTH} levels; the manifest "
                    "needs no more than 5, so remove the extra nesting",
                )
            _reject_explicit_tag(event)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _reject_explicit_tag(event: yaml.Event) -> None:
    """Reject a node with an explicit tag such as ``!!python/object`` or ``!!binary``.

    The manifest needs none, and PyYAML's constructors for tagged values fail with
    arbitrary exceptions on bad input (``!!timestamp 'x'`` raises AttributeError in
    PyYAML 6.0.4). ``!!str``, ``!!seq`` and ``!!map`` stay allowed because their
    constructors fail only with ConstructorError, which is reported with its
    position, and ``!!str 123`` is a common way to write a string.
    """
    tag = getattr(event, "tag", None)
    if tag is None or tag in _ALLOWED_TAGS:
        return
    raise _DocumentRejected(
        _position(event.start_mark),
        f"the tag {tag!r} is not allowed; remove it and write a plain value, because "
        "the manifest contains only strings, numbers, booleans, lists and mappings",
    )


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read, parse and validate the manifest file at ``path``.

    Raises:
        ManifestError: the file cannot be read or is not a valid manifest. The
            source of the error is the path.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        problem = "file not found; check the path, or copy the example manifest"
        raise ManifestError([f"document: {problem}"], source=source) from None
    except IsADirectoryError:
        problem = "is a directory; name the manifest file inside it"
        raise ManifestError([f"document: {problem}"], source=source) from None
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror}); check its permissions"
        raise ManifestError([f"document: {problem}"], source=source) from None
    _check_size(len(data), source=source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = f"byte {exc.start} is not valid UTF-8; save the file as UTF-8 text"
        raise ManifestError([f"document: {problem}"], source=source) from None
    manifest = parse_manifest(text, source=source)
    logger.debug("loaded manifest %s with %d orgs", source, len(manifest.orgs))
    return manifest


def parse_manifest(text: str, *, source: str = "manifest") -> Manifest:
    """Parse and validate manifest YAML text. ``source`` names the text in errors.

    Raises:
        ManifestError: with every problem found, one line each.
    """
    _check_size(len(text.encode("utf-8", "surrogatepass")), source=source)
    report = Report()
    try:
        data = _parse_yaml(text, report)
    except _DocumentRejected as exc:
        raise ManifestError([f"{exc.path}: {exc.message}"], source=source) from None
    if data is None:
        problem = (
            "the file is empty or contains only comments; start from the example "
            "manifest recsync/manifest/example.yaml"
        )
        raise ManifestError([f"document: {problem}"], source=source)
    try:
        manifest = build_manifest(data, source=source)
    except ManifestError as exc:
        # Duplicate keys come first because they explain a value that looks lost.
        raise ManifestError(report.problems + exc.problems, source=source) from None
    if report.problems:
        raise ManifestError(report.problems, source=source)
    return manifest


def manifest_from_mapping(data: object, *, source: str = "manifest") -> Manifest:
    """Validate an already parsed manifest, such as a host's configuration mapping.

    Raises:
        ManifestError: with every problem found, one line each.
    """
    return build_manifest(data, source=source)


def _check_size(size_bytes: int, *, source: str) -> None:
    if size_bytes > MAX_FILE_BYTES:
        problem = (
            f"the file is larger than {MAX_FILE_BYTES:,} bytes (1 MiB); a manifest is "
            "a short configuration file, so check that this is the right file"
        )
        raise ManifestError([f"document: {problem}"], source=source)


class _Mark(Protocol):
    """A position in the YAML text, as PyYAML and libyaml report it (0-based)."""

    line: int
    column: int


def _position(mark: _Mark | None) -> str:
    if mark is None:
        return "document"
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _parse_yaml(text: str, report: Report) -> Any:
    """Return the document's Python value, or None for an empty document.

    Duplicate keys are added to ``report``. Every other problem raises
    _DocumentRejected.
    """
    loader: _ManifestLoader | None = None
    try:
        # Creating the reader already checks for characters that YAML forbids.
        loader = _ManifestLoader(text)
        root = loader.get_single_node()
        if root is None:
            return None
        _check_alias_expansion(root)
        _report_duplicate_keys(root, report)
        return loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        parts = [part for part in (exc.context, exc.problem) if part]
        problem = ", ".join(parts) or "invalid syntax"
        is_value = isinstance(exc, ConstructorError)
        fix = _CONSTRUCTOR_FIX if is_value else _SYNTAX_FIX
        raise _DocumentRejected(
            _position(mark), f"not valid YAML: {problem}; {fix}"
        ) from None
    except ReaderError as exc:
        line, column = _line_and_column(text, exc.position)
        character = exc.character if isinstance(exc.character, int) else 0
        raise _DocumentRejected(
            f"line {line}, column {column}",
            f"character #x{character:04x} is not allowed in YAML; remove it",
        ) from None
    except yaml.YAMLError as exc:
        raise _DocumentRejected(
            "document", f"not valid YAML ({type(exc).__name__}); {_SYNTAX_FIX}"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # Implicit dates that do not exist and integers longer than Python's digit
        # limit (4300 by default) raise these. Their text may quote the value,
        # which could be a secret, so only the type shows.
        raise _DocumentRejected(
            "document",
            f"a value cannot be converted ({type(exc).__name__}); check dates, "
            "which must be real calendar dates, and very long numbers",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


def _line_and_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return line, column


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_alias_expansion(root: Node) -> None:
    """Reject a node graph that contains itself or expands too far.

    Aliases make the composed nodes a graph. The walk computes, once per node, the
    number of values and the nesting depth that the node stands for with every alias
    expanded. A document whose aliases double at each level is therefore rejected
    after a walk linear in its size, and no alias chain can nest deeper than
    MAX_DEPTH, which keeps PyYAML's recursive constructor within the stack.
    """
    expanded: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            expanded[key] = _expanded_size(node, expanded)
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise _DocumentRejected(
                _position(node.start_mark),
                "an alias refers to a node that contains the alias; remove the "
                "recursive alias",
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _expanded_size(node: Node, expanded: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """Return (values, depth) of a node whose children are all in ``expanded``."""
    children = [expanded[id(child)] for child in _children(node)]
    values = 1 + sum(count for count, _depth in children)
    depth = 1 + max((child_depth for _count, child_depth in children), default=0)
    if values > MAX_VALUES:
        raise _DocumentRejected(
            "document",
            f"the document expands to more than {MAX_VALUES:,} values, counting "
            "each alias as a copy; write values out instead of repeating them "
            "through aliases, and check that this file is the manifest",
        )
    if depth > MAX_DEPTH:
        raise _DocumentRejected(
            "document",
            f"aliases nest values deeper than {MAX_DEPTH} levels; write the values "
            "out instead of nesting aliases",
        )
    return values, depth


def _report_duplicate_keys(root: Node, report: Report) -> None:
    """Report keys that appear twice in one mapping, where PyYAML keeps the last."""
    seen_nodes: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, SequenceNode):
            for index, child in enumerate(node.value):
                stack.append((child, index_path(path, index)))
        elif isinstance(node, MappingNode):
            _report_duplicates_in(node, path, report)
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, ScalarNode) else None
                stack.append((value_node, join_path(path, key)))


def _report_duplicates_in(node: MappingNode, path: str, report: Report) -> None:
    first_line: dict[tuple[str, str], int] = {}
    for key_node, _value in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        identity = (key_node.tag, key_node.value)
        line = key_node.start_mark.line + 1
        if identity in first_line:
            report.add(
                join_path(path, key_node.value),
                f"duplicate key {show(key_node.value)} at line {line}, first at line "
                f"{first_line[identity]}; keep only one of them",
            )
        else:
            first_line[identity] = line

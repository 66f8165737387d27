"""Strict YAML loading: one document per file, a file:line:col for every value, secret references resolved.

Rejects what makes a config file ambiguous or dangerous: duplicate keys, merge keys, non-string keys,
alias bombs, oversized files, and secret references mixed into longer strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import yaml

from agent.config.diagnostics import ConfigErrors, Diagnostic
from agent.secrets import Secret

MAX_CONFIG_BYTES = 5 * 1024 * 1024
# Values a reader would visit with every alias expanded: a realm with thousands of users stays far below
# this, while a "billion laughs" document (a few lines of nested aliases) expands to 10**9 values.
MAX_NODES = 200_000
# Nesting (mapping keys plus list indices) allowed; deeper YAML is a mistake or an attack.
MAX_DEPTH = 64
MAX_SECRET_FILE_BYTES = 64 * 1024

ConfigPath: TypeAlias = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE, _TIMESTAMP = (f"{_TAG}{name}" for name in ("str", "map", "seq", "merge", "timestamp"))
_SCALARS = yaml.constructor.SafeConstructor()
_CONSTRUCTORS = {
    f"{_TAG}null": _SCALARS.construct_yaml_null,
    f"{_TAG}bool": _SCALARS.construct_yaml_bool,
    f"{_TAG}int": _SCALARS.construct_yaml_int,
    f"{_TAG}float": _SCALARS.construct_yaml_float,
}
_KINDS = {
    f"{_TAG}null": "null",
    f"{_TAG}bool": "a boolean",
    f"{_TAG}int": "an integer",
    f"{_TAG}float": "a number",
    _TIMESTAMP: "a date",
}
_NUMBER_TAGS = frozenset({f"{_TAG}int", f"{_TAG}float"})
_BOOL_TAG = f"{_TAG}bool"
# YAML 1.2 (and JSON) booleans; YAML 1.1 also reads yes/no/on/off so, and a country code NO becomes false.
_PLAIN_BOOLEANS = frozenset({"true", "false"})
# Numbers YAML 1.1 reads other than a reader would: 0123 (octal, 83), 12:30 (base 60, 750), 0x1F, 1_000.
_OTHER_NUMBER = re.compile(r"[-+]?(0[0-9_]+|0[xXoObB].*|.*[:_].*)")
_REFERENCE_OR_ESCAPE = re.compile(r"\$\$\{|\$\{")
_REFERENCE = re.compile(r"\$\{(?P<kind>[A-Za-z]+):(?P<target>[^{}]+)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE_HINT = "write ${env:NAME} or ${file:path} as the whole value; '$${' writes a literal '${'"
_NO_ENV: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, order=True)
class Position:
    """A 1-based line and column in a config file."""

    line: int
    col: int


START = Position(1, 1)


@dataclass(frozen=True, slots=True)
class _Located:
    """Where one value was written and, for each child, where its key and value were.

    Every alias of an anchor shares the anchor's _Located, so positions cost memory per YAML node, not
    per expanded value.
    """

    position: Position
    children: Mapping[str | int, tuple[Position | None, _Located]] = field(default_factory=dict)


class _PositionTable(Mapping[ConfigPath, Position]):
    """A path -> position table read from a _Located tree (value positions, or mapping-key positions)."""

    def __init__(self, root: _Located | None, *, of_keys: bool) -> None:
        self._root = root
        self._of_keys = of_keys

    def __getitem__(self, path: ConfigPath) -> Position:
        entry = self._entry(path)
        found = None if entry is None else (entry[0] if self._of_keys else entry[1].position)
        if found is None:
            raise KeyError(path)
        return found

    def __iter__(self) -> Iterator[ConfigPath]:
        """Every path, in document order (aliases expanded)."""
        if self._root is None:
            return
        stack: list[tuple[ConfigPath, tuple[Position | None, _Located]]] = [((), (None, self._root))]
        while stack:
            path, (key_position, located) = stack.pop()
            if not self._of_keys or key_position is not None:
                yield path
            stack.extend(((*path, part), child) for part, child in reversed(list(located.children.items())))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _entry(self, path: object) -> tuple[Position | None, _Located] | None:
        if self._root is None or not isinstance(path, tuple):
            return None
        entry: tuple[Position | None, _Located] | None = (None, self._root)
        for part in path:
            entry = entry[1].children.get(part) if entry is not None else None
        return entry


@dataclass(frozen=True)
class Document:
    """One parsed config file: plain data (secret references as Secret) and where every value came from."""

    name: str
    data: Any
    positions: Mapping[ConfigPath, Position] = field(default_factory=dict, repr=False, compare=False)
    key_positions: Mapping[ConfigPath, Position] = field(default_factory=dict, repr=False, compare=False)

    def known_prefix(self, path: Sequence[str | int]) -> ConfigPath:
        """The longest prefix of `path` that exists in the document."""
        path = tuple(path)
        for end in range(len(path), 0, -1):
            if path[:end] in self.positions:
                return path[:end]
        return ()

    def position_of(self, path: Sequence[str | int]) -> Position:
        """Where the value at `path` starts, or its nearest existing parent; 1:1 when nothing matches."""
        return self.positions.get(self.known_prefix(path), START)

    def key_position_of(self, path: Sequence[str | int]) -> Position:
        """Where the mapping key naming `path` is written; falls back to position_of."""
        return self.key_positions.get(tuple(path)) or self.position_of(path)


def load_document(path: Path, *, env: Mapping[str, str], base_dir: Path) -> Document:
    """Read and parse one config file; relative `${file:...}` references resolve against `base_dir`.

    Raises ConfigErrors carrying every problem found in the file.
    """
    name = str(path)
    text = _decode(_read_limited(path, name), name)
    return parse_document(text, name, env=env, base_dir=base_dir)


def parse_document(
    text: str,
    name: str,
    *,
    env: Mapping[str, str] = _NO_ENV,
    base_dir: Path | None = None,
    max_nodes: int = MAX_NODES,
) -> Document:
    """Parse YAML text named `name`; an empty text gives data None.

    `base_dir` defaults to the directory of `name`. Raises ConfigErrors carrying every problem found.
    """
    if len(text) > MAX_CONFIG_BYTES or len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigErrors([_too_large(name)])
    root, diagnostics = _compose(text, name)
    if root is None:
        return Document(name, None)
    too_big = _first_too_big(root, max_nodes)
    if too_big is not None:
        # Refused before building anything, so an alias bomb costs time and memory per YAML node only.
        diagnostics.append(_too_many_nodes(name, too_big, max_nodes))
        raise ConfigErrors(diagnostics)
    walker = _Walker(name, env, Path(name).parent if base_dir is None else base_dir)
    data, located = walker.walk(root, ())
    diagnostics.extend(walker.diagnostics)
    if diagnostics:
        raise ConfigErrors(diagnostics)
    return Document(name, data, _PositionTable(located, of_keys=False), _PositionTable(located, of_keys=True))


def _read_limited(path: Path, name: str) -> bytes:
    # Read at most one byte past the limit, so an oversized file is refused before it is parsed or held.
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        message = f"cannot read this file: {error.strerror or type(error).__name__}"
        raise ConfigErrors([Diagnostic(name, 1, 1, message)]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigErrors([_too_large(name)])
    return raw


def _too_large(name: str) -> Diagnostic:
    limit_mib = MAX_CONFIG_BYTES // (1024 * 1024)
    return Diagnostic(
        name, 1, 1, f"file is larger than {limit_mib} MiB, the limit for one config file", "split it into smaller files"
    )


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line, col = _line_col(raw[: error.start].decode("utf-8", errors="replace"))
        raise ConfigErrors([Diagnostic(name, line, col, "file is not UTF-8 text")]) from None


def _line_col(before: str) -> tuple[int, int]:
    """1-based line and column of the character that follows `before`."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _compose(text: str, name: str) -> tuple[yaml.Node | None, list[Diagnostic]]:
    """The node graph of the only document in `text` (aliases shared, not expanded yet)."""
    # The pure-Python loader, not libyaml's: its marks and messages are the same on every machine.
    try:
        loader = yaml.SafeLoader(text)  # the reader checks for unprintable characters here
    except yaml.reader.ReaderError as error:
        line, col = _line_col(text[: error.position])
        raise ConfigErrors([Diagnostic(name, line, col, f"invalid YAML: {error.reason}")]) from None
    try:
        if not loader.check_node():
            return None, []
        root = loader.get_node()
        if not loader.check_node():
            return root, []
        # The stubs leave peek_event untyped; after check_node it is the second document's start.
        mark: yaml.Mark = loader.peek_event().start_mark  # type: ignore[no-untyped-call]
        second = Diagnostic(
            name,
            mark.line + 1,
            mark.column + 1,
            "a second YAML document starts here; one document per file",
            "move it into a file of its own",
        )
        return root, [second]
    except yaml.MarkedYAMLError as error:
        raise ConfigErrors([_syntax_diagnostic(name, error)]) from None
    except RecursionError:
        # The composer recurses once per nesting level; only an absurdly nested file gets here.
        raise ConfigErrors([Diagnostic(name, 1, 1, "invalid YAML: nested too deeply")]) from None
    finally:
        loader.dispose()


def _syntax_diagnostic(name: str, error: yaml.MarkedYAMLError) -> Diagnostic:
    mark = error.problem_mark or error.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    hint = ""
    if error.context:
        hint = error.context
        if error.context_mark is not None:
            hint += f" that starts at line {error.context_mark.line + 1}"
    return Diagnostic(name, line, col, f"invalid YAML: {error.problem or error.context}", hint)


def _first_too_big(root: yaml.Node, max_nodes: int) -> yaml.Node | None:
    """The innermost node whose value, with every alias expanded, holds more than `max_nodes` values.

    Counts what walking with alias expansion would visit, without expanding: each node's count is
    computed once and reused for every alias of it.
    """
    counts: dict[int, int] = {}
    open_nodes: set[int] = set()
    culprit: list[yaml.Node] = []

    def count(node: yaml.Node, depth: int) -> int:
        if id(node) in counts:
            return counts[id(node)]
        if id(node) in open_nodes or depth > MAX_DEPTH:
            return 1  # a recursive alias or too deep: the walker reports it
        open_nodes.add(id(node))
        total = 1
        for child in _children(node):
            total += count(child, depth + 1)
            if total > max_nodes:
                if not culprit:
                    culprit.append(node)
                break
        open_nodes.discard(id(node))
        counts[id(node)] = total
        return total

    count(root, 0)
    return culprit[0] if culprit else None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [value for _key, value in node.value]
    return []


def _too_many_nodes(name: str, node: yaml.Node, max_nodes: int) -> Diagnostic:
    position = _position(node)
    return Diagnostic(
        name,
        position.line,
        position.col,
        f"this value expands to more than {max_nodes} values once aliases are expanded",
        "is this an alias bomb? each '*alias' copies its whole anchor; nest fewer aliases",
    )


class _Walker:
    """Turns a composed node graph into plain data and positions, collecting every problem on the way.

    An anchor is walked once: its aliases share its data and positions, as PyYAML itself shares them.
    """

    def __init__(self, name: str, env: Mapping[str, str], base_dir: Path) -> None:
        self.name = name
        self.env = env
        self.base_dir = base_dir
        self.diagnostics: list[Diagnostic] = []
        self._done: dict[int, tuple[Any, _Located]] = {}
        self._open: set[int] = set()  # ids of the nodes being walked, to spot an alias to an ancestor

    def walk(self, node: yaml.Node, path: ConfigPath) -> tuple[Any, _Located]:
        done = self._done.get(id(node))
        if done is not None:
            return done
        if id(node) in self._open:
            self._report(node, "recursive alias: this value contains itself")
            return None, _Located(_position(node))
        if len(path) > MAX_DEPTH:
            self._report(node, f"nested more than {MAX_DEPTH} levels deep")
            return None, _Located(_position(node))
        self._open.add(id(node))
        try:
            result = self._walk_node(node, path)
        finally:
            self._open.discard(id(node))
        self._done[id(node)] = result
        return result

    def _walk_node(self, node: yaml.Node, path: ConfigPath) -> tuple[Any, _Located]:
        if isinstance(node, yaml.SequenceNode):
            return self._sequence(node, path)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        assert isinstance(node, yaml.ScalarNode)  # the composer makes only these three kinds
        return self._scalar(node), _Located(_position(node))

    def _sequence(self, node: yaml.SequenceNode, path: ConfigPath) -> tuple[list[Any] | None, _Located]:
        if node.tag != _SEQ:
            self._unsupported_tag(node)
            return None, _Located(_position(node))
        items: list[Any] = []
        children: dict[str | int, tuple[Position | None, _Located]] = {}
        for index, item in enumerate(node.value):
            value, located = self.walk(item, (*path, index))
            items.append(value)
            children[index] = (None, located)
        return items, _Located(_position(node), children)

    def _mapping(self, node: yaml.MappingNode, path: ConfigPath) -> tuple[dict[str, Any] | None, _Located]:
        if node.tag != _MAP:
            self._unsupported_tag(node)
            return None, _Located(_position(node))
        result: dict[str, Any] = {}
        children: dict[str | int, tuple[Position | None, _Located]] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key is None:
                continue
            if key in children:
                first_line = children[key][0] or START
                self._report(
                    key_node,
                    f"duplicate key '{key}' (first at line {first_line.line})",
                    "remove one of them; YAML would silently keep only the last",
                )
                continue
            result[key], located = self.walk(value_node, (*path, key))
            children[key] = (_position(key_node), located)
        return result, _Located(_position(node), children)

    def _key(self, node: yaml.Node) -> str | None:
        if node.tag == _MERGE:
            self._report(
                node,
                "merge keys ('<<') are not supported",
                "their meaning is unclear (YAML 1.1 only, dropped in 1.2, and which value wins surprises "
                "readers); write the keys out",
            )
            return None
        if not isinstance(node, yaml.ScalarNode):
            self._report(node, "a mapping key must be a string, not a list or mapping")
            return None
        if node.tag != _STR:
            kind = _KINDS.get(node.tag, f"tag {node.tag}")
            self._report(
                node, f"a mapping key must be a string; '{node.value}' reads as {kind}", f'quote it: "{node.value}"'
            )
            return None
        return str(node.value)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _STR:
            return self._string(node)
        if node.tag == _TIMESTAMP:
            # Kept as written: models parse ISO dates from strings, and `data` stays JSON-like.
            return str(node.value)
        construct = _CONSTRUCTORS.get(node.tag)
        if construct is None:
            self._unsupported_tag(node)
            return None
        try:
            value = construct(node)
        except (ValueError, KeyError):  # an explicit tag on a value that does not fit it, e.g. `!!int abc`
            self._report(node, f"'{node.value}' is not valid for tag {node.tag}")
            return None
        if node.tag in _NUMBER_TAGS and _reads_as_another_number(str(node.value)):
            message = f"YAML 1.1 reads '{node.value}' as the number {value}, not as written"
            self._report(node, message, f'quote it if it is text: "{node.value}"; else write {value}')
            return None
        if node.tag == _BOOL_TAG and str(node.value).lower() not in _PLAIN_BOOLEANS:
            written = "true" if value else "false"
            message = f"YAML 1.1 reads '{node.value}' as the boolean {written}, not as written"
            self._report(node, message, f'quote it if it is text: "{node.value}"; else write {written}')
            return None
        return value

    def _unsupported_tag(self, node: yaml.Node) -> None:
        self._report(node, f"unsupported YAML tag '{node.tag}'", "remove the tag; only plain YAML values are read")

    def _string(self, node: yaml.ScalarNode) -> str | Secret | None:
        text = str(node.value)
        references = 0

        def unescape(match: re.Match[str]) -> str:
            nonlocal references
            if match.group() == "$${":
                return "${"
            references += 1
            return match.group()

        literal = _REFERENCE_OR_ESCAPE.sub(unescape, text)
        if references == 0:
            return literal
        if references == 1 and text.startswith("${") and text.endswith("}"):
            return self._reference(node, text)
        if _has_embedded_reference(text):
            # Mixing a secret into a longer string would put it wherever that string is shown.
            self._report(node, "a secret reference must be the whole value", _REFERENCE_HINT)
        else:
            self._report(node, "malformed secret reference", _REFERENCE_HINT)
        return None

    def _reference(self, node: yaml.ScalarNode, text: str) -> Secret | None:
        match = _REFERENCE.fullmatch(text)
        if match is None:
            self._report(node, "malformed secret reference", _REFERENCE_HINT)
            return None
        kind, target = match["kind"], match["target"]
        if kind == "env":
            return self._env_secret(node, target)
        if kind == "file":
            return self._file_secret(node, target)
        self._report(node, f"unknown reference kind '{kind}'", _REFERENCE_HINT)
        return None

    def _env_secret(self, node: yaml.ScalarNode, variable: str) -> Secret | None:
        if not _ENV_NAME.fullmatch(variable):
            self._report(node, f"'{variable}' is not an environment variable name")
            return None
        value = self.env.get(variable)
        if value is None:
            self._report(node, f"environment variable '{variable}' is not set", "set it, or use ${file:path}")
            return None
        return Secret(value)

    def _file_secret(self, node: yaml.ScalarNode, target: str) -> Secret | None:
        path = Path(target)
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            self._report(node, f"cannot read secret file {path}: {reason}", "check the path and its permissions")
            return None
        if len(raw) > MAX_SECRET_FILE_BYTES:
            self._report(node, f"secret file {path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
            return None
        try:
            # One line end as editors write it (\n, or \r\n on Windows) is not part of the secret.
            text = raw.decode("utf-8")
            return Secret(text.removesuffix("\r\n") if text.endswith("\r\n") else text.removesuffix("\n"))
        except UnicodeDecodeError:
            self._report(node, f"secret file {path} is not UTF-8 text")
            return None

    def _report(self, node: yaml.Node, message: str, hint: str = "") -> None:
        position = _position(node)
        self.diagnostics.append(Diagnostic(self.name, position.line, position.col, message, hint))


def _reads_as_another_number(text: str) -> bool:
    """Whether YAML 1.1 turns this plain number into one written otherwise (a zip code 01234 into 668)."""
    return _OTHER_NUMBER.fullmatch(text) is not None


def _has_embedded_reference(text: str) -> bool:
    """Whether an unescaped, well-formed `${kind:target}` appears somewhere in `text`."""
    return any(
        match.group() == "${" and _REFERENCE.match(text, match.start()) is not None
        for match in _REFERENCE_OR_ESCAPE.finditer(text)
    )


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)

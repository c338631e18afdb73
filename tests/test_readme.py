"""The README's examples, run as written against the demo company: every operation of every
```graphql block (over HTTP, as GraphiQL sends it) and every client command of the ```bash
blocks. Each must answer without errors, with data: no empty list that should hold something,
not only zeros.

New examples are picked up as they are written. A block that is not meant to run is marked
with `<!-- not run: reason -->` on the line before its fence; server-side commands (they need
the database, not the server, or they start one) are recognised by name in SERVER_SIDE."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, parse

from tests.demo_data import demo_server, tidemill

README = Path(__file__).resolve().parents[1] / "README.md"
SERVER_SIDE = frozenset(
    {"serve", "demo", "migrate", "import", "fx", "keys", "queries", "sources", "sync", "worker"}
)
FENCE = re.compile(r"(?P<before>[^\n]*)\n```(?P<language>\w*)\n(?P<body>.*?)\n```", re.DOTALL)
SKIP = re.compile(r"<!--\s*not run:.*-->")


@dataclass(frozen=True)
class Example:
    line: int
    kind: str  # graphql | cli
    text: str
    operation: str | None = None  # the operation to run, when a block holds several

    @property
    def id(self) -> str:
        words = (self.operation or " ".join(self.text.split()[:4]))[:40]
        return f"README:{self.line} {words}"


def _blocks(readme: str) -> Iterator[tuple[int, str, str]]:
    for found in FENCE.finditer("\n" + readme):
        if SKIP.search(found["before"]):
            continue
        line = readme.count("\n", 0, found.start("body") - 1) + 1
        yield line, found["language"], found["body"]


def _operations(line: int, body: str) -> Iterator[Example]:
    operations = [d for d in parse(body).definitions if isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        name = operation.name.value if operation.name else None
        assert name or len(operations) == 1, f"README line {line}: name every operation"
        yield Example(line, "graphql", body, name)


def _commands(line: int, body: str) -> Iterator[Example]:
    joined = body.replace("\\\n", " ")
    for offset, text in enumerate(joined.splitlines()):
        words = shlex.split(text, comments=True)
        if words[:1] == ["tidemill"] and words[1] not in SERVER_SIDE:
            yield Example(line + offset, "cli", shlex.join(words))


def examples() -> list[Example]:
    found: list[Example] = []
    for line, language, body in _blocks(README.read_text(encoding="utf-8")):
        if language == "graphql":
            found.extend(_operations(line, body))
        elif language in {"bash", "sh", "shell"}:
            found.extend(_commands(line, body))
    return found


EXAMPLES = examples()


@pytest.fixture(scope="module")
def server(database: str) -> Iterator[str]:
    """The demo lives in a database of its own on the test server (see tests/demo_data.py)."""
    with demo_server(database) as url:
        yield url


def _walk(value: Any, path: str, lists: dict[str, bool], numbers: dict[str, bool]) -> None:
    """Note, per path with list indexes dropped, whether some list there holds something and
    (per top-level field) whether some number is not 0."""
    if isinstance(value, list):
        lists[path] = lists.get(path, False) or bool(value)
        for item in value:
            _walk(item, f"{path}[]", lists, numbers)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}", lists, numbers)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        top = path.split(".")[1].split("[")[0]
        numbers[top] = numbers.get(top, False) or value != 0


def emptiness(data: Any) -> list[str]:
    """What in `data` has no data: a null or empty top-level field, a list empty everywhere
    it occurs, a top-level field whose numbers are all 0."""
    problems = [f"{key} is {value!r}" for key, value in data.items() if value in (None, [], {})]
    lists: dict[str, bool] = {}
    numbers: dict[str, bool] = {}
    _walk(data, "", lists, numbers)
    problems += [f"{path} is always empty" for path, filled in lists.items() if not filled]
    problems += [f"{field}: every number is 0" for field, some in numbers.items() if not some]
    return problems


def run_graphql(server: str, example: Example) -> None:
    body = {"query": example.text, "operationName": example.operation}
    response = httpx.post(f"{server}/graphql", json=body, timeout=120)
    answer = response.json()
    assert response.status_code == 200, answer
    assert "errors" not in answer, answer["errors"]
    assert emptiness(answer["data"]) == [], json.dumps(answer["data"])[:2000]


def _as_json(words: list[str]) -> list[str]:
    """The same command asking for JSON (instead of the format it names, if any)."""
    if "--format" in words:
        at = words.index("--format")
        return [*words[:at], *words[at + 2 :], "--format", "json"]
    return [*words, "--format", "json"]


def run_cli(server: str, example: Example) -> None:
    words = shlex.split(example.text)[1:]
    as_written = tidemill(server, *words)
    assert as_written.exit_code == 0, as_written.output
    assert as_written.stdout.strip(), as_written.output
    assert as_written.stderr == "", as_written.stderr  # stderr says "no data in ..."
    rows = json.loads(tidemill(server, *_as_json(words)).stdout)
    assert rows, example.text
    assert emptiness({"rows": rows}) == [], rows[:3]


def test_the_readme_has_examples_of_both_kinds() -> None:
    kinds = {example.kind for example in EXAMPLES}
    assert kinds == {"graphql", "cli"}
    assert len(EXAMPLES) >= 15


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_example_runs_as_written(server: str, example: Example) -> None:
    if example.kind == "graphql":
        run_graphql(server, example)
    else:
        run_cli(server, example)


def test_emptiness_is_found() -> None:
    """The check itself: each kind of emptiness is reported, data is not."""
    assert emptiness({"a": [], "b": None, "c": {"x": 0, "y": [{"z": 0.0}]}}) == [
        "a is []",
        "b is None",
        ".a is always empty",
        "c: every number is 0",
    ]
    assert emptiness({"a": [{"l": []}, {"l": [1]}], "b": {"x": 0, "y": 2}}) == []

"""The view registry and the shape of the code: declarations, parameters, the import graph."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import msgspec
import pytest

from app.lib.lru import LRU
from app.metrics.analytics import InvalidParameter
from app.metrics.controllers import signature
from app.metrics.views import VIEWS, PageParams, Scope, SeriesParams, TopCountriesParams

APP = Path(__file__).resolve().parents[2] / "app"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_assembly_is_imported_by_nothing_but_the_factory():
    """app/server only assembles: no domain or library module imports it (app/__init__.py's
    create_app, the entry point Litestar and uvicorn discover, is the one exception)."""
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        relative = path.relative_to(APP.parent)
        if relative.parts[1] == "server" or relative == Path("app/__init__.py"):
            continue
        if any(name == "app.server" or name.startswith("app.server.") for name in _imports(path)):
            offenders.append(str(relative))
    assert offenders == []


def test_web_plumbing_and_errors_know_no_domain():
    domains = ("app.auth", "app.metrics", "app.ingest", "app.admin", "app.system")
    for path in [*sorted((APP / "lib" / "web").glob("*.py")), APP / "lib" / "errors.py", APP / "lib" / "lru.py"]:
        imported = _imports(path)
        assert not [name for name in imported if name.startswith(domains)], path


def test_every_view_is_declared_completely():
    names = [view.name for view in VIEWS]
    paths = [view.path for view in VIEWS]
    assert len(set(names)) == len(names) and len(set(paths)) == len(paths)
    templates = APP.parent / "templates"
    for view in VIEWS:
        assert (templates / "metrics" / f"{view.template}.html").exists(), view.name
        assert (templates / "partials" / f"{view.template}.html").exists(), view.name
        parameters = [p.name for p in signature(view.params, view.path_params)]
        assert parameters == [
            "request",
            *view.path_params,
            *(n for n in view.params.__struct_fields__ if n not in view.path_params),
        ]
        for table in view.tables:  # a column that is not a field of the rows would be a blank column
            assert set(table.columns) <= set(table.row.__struct_fields__), (view.name, table.name)
        assert view.result.__module__ == "app.metrics.schemas", view.name  # the JSON contract's one home


def test_two_spellings_of_one_question_are_one_cache_entry():
    assert Scope.from_query(country=" GERMANY ").key() == Scope.from_query(country="germany").key()
    assert PageParams.from_query(q=" Mug").key() == PageParams.from_query(q="mug").key()
    assert Scope.from_query(start="2011-01-01").key() == Scope(start=date(2011, 1, 1)).key()
    assert Scope.from_query(start="2011-01-01").key() != Scope().key()
    # the given spelling is kept for computing (an unknown country's message names it as typed)
    assert Scope.from_query(country=" Atlantis ").country == "Atlantis"


def test_parameters_are_checked_with_messages_that_say_what_to_type():
    with pytest.raises(InvalidParameter, match="YYYY-MM-DD"):
        Scope.from_query(start="yesterday")
    with pytest.raises(InvalidParameter, match="NUL"):
        Scope.from_query(country="\x00")
    with pytest.raises(InvalidParameter, match="too long"):
        PageParams.from_query(q="x" * 101)
    assert Scope.from_query(country="   ").country is None  # blank is no filter


def test_links_keep_only_what_differs_from_the_defaults():
    assert SeriesParams(freq="month").query() == {}
    assert SeriesParams(freq="week", start=date(2011, 1, 1)).query() == {"start": "2011-01-01", "freq": "week"}
    assert TopCountriesParams(by="orders", limit=10).query() == {"by": "orders"}
    assert PageParams(q="mug", page=3).query(exclude=("page",)) == {"q": "mug"}


def test_params_are_frozen_structs():
    params = SeriesParams()
    with pytest.raises(AttributeError):
        params.freq = "day"  # type: ignore[misc]
    assert msgspec.structs.asdict(params) == {"start": None, "end": None, "country": None, "freq": "month"}


def test_the_lru_forgets_the_least_recently_used():
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert ("a" in lru, "b" in lru, "c" in lru, len(lru)) == (True, False, True, 2)
    assert lru.pop("a") == 1 and lru.get("a") is None

"""Rendering: the page shell around a main block, and the once-per-key cache of rendered HTML.

Only what depends on the view and the data is cached: never the nav bar (the user) or a
CSRF token, which the shell adds on every request. Templates of a cached block get no
`user` in their context, so per-user data cannot slip into a block that every user sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from litestar import Request, Response
from markupsafe import Markup

from app.lib.lru import LRU
from app.lib.web.asking import JSON, NO_STORE_HEADERS, is_htmx, wants_json

T = TypeVar("T")


class Answer(Response[T]):
    """A view's answer, declared with the Struct the JSON has (so OpenAPI describes it) and made
    of what is already encoded: the JSON bytes as cached, or rendered HTML."""

    def __init__(self, content: bytes | str, media_type: str = JSON) -> None:
        super().__init__(content=content, media_type=media_type, headers=dict(NO_STORE_HEADERS))  # type: ignore[arg-type]  # bytes, as encoded


MAX_RENDERED_BYTES = 256_000
RENDERED: LRU[Hashable, tuple[Markup, Markup]] = LRU(128)  # (template, key) -> (title, main)


def _engine(request: Request) -> Any:
    return request.app.template_engine


def render_blocks(request: Request, name: str, context: dict[str, Any]) -> tuple[Markup, Markup]:
    """A page template's `title` and `main` blocks, without the shell around them."""
    template = _engine(request).get_template(name)
    jinja_context = template.new_context(context)
    title = "".join(template.blocks["title"](jinja_context))
    return Markup(title), Markup("".join(template.blocks["main"](jinja_context)))  # noqa: S704 - autoescaped renders


def shell_html(request: Request, title: Markup, main: Markup) -> str:
    """The page shell (nav bar with the user, footer) around a rendered main block.

    Rendered here rather than through Litestar's Template response, which cost as much again.
    """
    shell = _engine(request).get_template("shell.html")
    return shell.render(request=request, user=request.scope.get("user"), title=title, main=main)


async def rendered(
    request: Request,
    key: Hashable,
    page: str,
    partial: str,
    context: Callable[[], Awaitable[dict[str, Any]]],
    extra: dict[str, Any] | None = None,
) -> Answer[Any]:
    """The full page, or for htmx the partial, of one view: rendered once per `key` (RENDERED).

    `key` must name everything the HTML depends on; `context` is only awaited when this is
    rendered, and must carry nothing of the user (the shell adds the user on every request).
    `extra` (a filter's error and the input it came from) makes a one-off page, not kept.
    """
    htmx = is_htmx(request)
    template = partial if htmx else page
    blocks = None if extra else RENDERED.get((template, key))
    if blocks is None:
        values = await context()
        if "user" in values:
            raise RuntimeError(f"{template}: per-user data in a block rendered once for every user")
        values.update(extra or {}, htmx=htmx)
        if htmx:
            html = Markup(_engine(request).get_template(partial).render(**values))  # noqa: S704 - autoescaped
            blocks = (Markup(""), html)
        else:
            blocks = render_blocks(request, page, values)
        if not extra and len(blocks[1]) <= MAX_RENDERED_BYTES:
            RENDERED.put((template, key), blocks)
    if htmx:
        return Answer(str(blocks[1]), media_type="text/html")
    return Answer(shell_html(request, *blocks), media_type="text/html")


async def answer(
    request: Request,
    body: bytes,
    page: str,
    partial: str,
    context: Callable[[], Awaitable[dict[str, Any]]],
    version: Callable[[], Awaitable[str]],
) -> Answer[Any]:
    """One result, three ways: JSON bytes as they are, the full page, or the htmx partial.

    For HTML only, `version()` gives the dataset version (the page's lists, such as the
    countries, depend on it) and `context` is awaited when this view of that version has not
    been rendered yet: API clients never pay for either, browsers rarely for the rendering.
    """
    if wants_json(request):
        return Answer(body)
    return await rendered(request, (await version(), request.scope["query_string"], body), page, partial, context)

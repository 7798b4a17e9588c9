"""What /schema says beyond the handlers: the API's title, its token, and the error answers."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar.connection import Request
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)


class ErrorBody(msgspec.Struct):
    """Every 4xx and 5xx answer to an API client."""

    status_code: int
    detail: str


BEARER: list[dict[str, list[str]]] = [{"BearerToken": []}]
NO_NUL = "^[^\\u0000]*$"  # PostgreSQL refuses a NUL in text: so do the parameters


def json_body(
    properties: dict[str, Schema | Reference],
    description: str,
    required: list[str] | None = None,
    optional: bool = False,
) -> type[Operation]:
    """An Operation class that documents a JSON request body the handler reads itself (it also
    takes the same fields as a form, for browsers): so the schema, and a fuzzer, know it."""
    schema = Schema(
        type=OpenAPIType.OBJECT, properties=properties, required=sorted(properties) if required is None else required
    )

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=schema)},
                description=description,
                required=not optional,  # an optional body may be left out altogether
            )

    return WithBody


def text(description: str, *, min_length: int = 0, max_length: int, pattern: str = NO_NUL) -> Schema:
    return Schema(
        type=OpenAPIType.STRING, description=description, min_length=min_length, max_length=max_length, pattern=pattern
    )


def errors(*codes: int) -> dict[int, ResponseSpec]:
    described = {
        400: "A parameter or the body is invalid; `detail` says which and how to fix it",
        401: "Not signed in, or the token is expired, revoked or invalid",
        403: "Not allowed (admins only, a missing CSRF token on a form, or registration closed)",
        404: "Not found (a country, a user, an invite); `detail` names it",
        409: "A conflict: the username is taken, or the change would leave no active admin",
        415: "The body is neither JSON nor a form",
        429: "Too many failed logins; see the Retry-After header",
        503: "The database is unavailable; retry shortly",
    }
    return {code: ResponseSpec(data_container=ErrorBody, description=described[code]) for code in codes}


class RedocPage(OpenAPIRenderPlugin):
    """The API documentation with Redoc served from static/ (no CDN, no inline script:
    the bundle finds the <redoc> element itself)."""

    def __init__(self) -> None:
        super().__init__(path="/")

    def render(self, request: Request, openapi_schema: dict) -> bytes:
        return (
            b"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            b"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            b"<title>Shop analytics API</title><link rel='icon' href='/static/favicon.svg'></head><body>"
            b"<redoc spec-url='/schema/openapi.json' disable-search hide-download-button></redoc>"
            b"<script src='/static/redoc.standalone.js'></script></body></html>"
        )


def openapi_config(version: str = "1.0") -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Shop analytics API",
        version=version,
        description="KPIs, revenue series, top countries, country drilldowns and transactions of an imported "
        "store export. Log in with POST /auth/login and send `Authorization: Bearer <access_token>`.",
        path="/schema",
        render_plugins=[RedocPage()],
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
    )

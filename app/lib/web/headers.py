"""What every response carries: the security headers, and the CSRF cookie when it is new."""

from __future__ import annotations

from litestar.types import Message, Scope

from app.lib.settings import get_settings
from app.lib.web.csrf import csrf_cookie

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# piccolo-admin's interface (Vue + Font Awesome) and Redoc (/schema) inject <style> elements: inline
# styles, and only styles, are allowed there. Scripts stay 'self' only everywhere.
ADMIN_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
PAGE_HEADERS = [(b"content-security-policy", CSP.encode()), *SECURITY_HEADERS]
ADMIN_HEADERS = [(b"content-security-policy", ADMIN_CSP.encode()), *SECURITY_HEADERS]


async def before_send(message: Message, scope: Scope) -> None:
    """Security headers on every response (pages, JSON, errors, static files, /admin) and the CSRF cookie."""
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers", ()))
    path = scope.get("raw_path") or scope.get("path", "").encode()
    if path.startswith((b"/admin", b"/schema")):  # mounted apps may set some of these themselves
        present = {name.lower() for name, _ in headers}
        headers.extend(header for header in ADMIN_HEADERS if header[0] not in present)
    else:
        headers.extend(PAGE_HEADERS)
    new = scope.get("csrf_new")
    if new:  # a URL-safe token needs no quoting; Litestar's Cookie.to_header cost a fifth of a page
        secure = "; Secure" if get_settings().cookie_secure else ""
        cookie = f"{csrf_cookie()}={new}; HttpOnly; Path=/; SameSite=Lax{secure}"
        headers.append((b"set-cookie", cookie.encode()))
    message["headers"] = headers

"""Web plumbing every controller shares, and no domain: how to answer (JSON, page or htmx
partial), rendering, CSRF, security headers, the request deadline, errors in the asker's
format and the OpenAPI helpers. Who is asking lives in app.auth.guards."""

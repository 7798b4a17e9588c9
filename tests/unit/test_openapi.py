"""The OpenAPI schema describes the JSON API (built from the app, no request served)."""

from __future__ import annotations

import msgspec

from app import create_app


def test_openapi_describes_the_json(tmp_path):
    app = create_app()
    schema = app.openapi_schema.to_schema()
    paths = schema["paths"]
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/logout",
        "/users/me",
        "/metrics/kpis",
        "/metrics/series",
        "/metrics/top-countries",
        "/metrics/top-countries/{country_name}",
        "/metrics/page",
    ]:
        assert path in paths, path
    assert schema["info"]["title"] == "Shop analytics API"
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    operation = paths["/metrics/kpis"]["get"]
    assert {"200", "400", "401", "404", "503"} <= set(operation["responses"])
    assert operation["security"] == [{"BearerToken": []}]
    assert {"401", "429"} <= set(paths["/auth/login"]["post"]["responses"])
    kpis = schema["components"]["schemas"]["Kpis"]["properties"]
    assert {"revenue", "units_sold", "orders", "customers", "average_order_value"} <= set(kpis)
    assert msgspec.json.encode(schema)

"""An independent computation of METRICS.md: SQL in DuckDB over the CSV, exact Decimal rounding.

Written apart from app/metrics on purpose: no Polars, no shared helpers, decimals
instead of integer thousandths, calendar arithmetic instead of truncation.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import ClassVar

import duckdb

NOT_PRODUCTS = ("POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE", "C2", "D", "S", "CRUK", "PADS", "B")
CENT = Decimal("0.01")


def r2(value: Decimal | int | None) -> float | None:
    if value is None:
        return None
    return float(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


class Reference:
    def __init__(self, csv_path: Path, currency: str = "GBP") -> None:
        self.currency = currency
        self.db = duckdb.connect()
        self.db.execute(
            f"""
            CREATE TABLE raw AS SELECT * FROM read_csv('{csv_path}', header = true, all_varchar = true,
                quote = '"', escape = '"')
            """
        )
        self.db.execute(
            """
            CREATE TABLE rows AS SELECT
                rowid AS line,
                InvoiceNo AS invoice_no,
                StockCode AS stock_code,
                NULLIF(Description, '') AS description,
                CAST(Quantity AS BIGINT) AS quantity,
                strptime(InvoiceDate, '%m/%d/%Y %H:%M') AS ts,
                CAST(UnitPrice AS DECIMAL(18, 3)) AS price,
                CAST(NULLIF(CustomerID, '') AS BIGINT) AS customer_id,
                Country AS country
            FROM raw
            """
        )
        self.db.execute(
            """
            CREATE VIEW sales AS SELECT *, quantity * price AS revenue, CAST(ts AS DATE) AS d FROM rows
            WHERE NOT starts_with(invoice_no, 'C') AND NOT starts_with(invoice_no, 'A')
              AND quantity > 0 AND price > 0
            """
        )
        self.db.execute(
            """
            CREATE VIEW cancels AS SELECT *, -(quantity * price) AS revenue, CAST(ts AS DATE) AS d FROM rows
            WHERE starts_with(invoice_no, 'C')
            """
        )
        self.countries = [r[0] for r in self.db.execute("SELECT DISTINCT country FROM rows ORDER BY 1").fetchall()]

    # -- helpers -------------------------------------------------------------------------

    def _where(self, start: date | None, end: date | None, country: str | None) -> tuple[str, list]:
        clauses, args = ["TRUE"], []
        if start is not None:
            clauses.append("d >= ?")
            args.append(start)
        if end is not None:
            clauses.append("d <= ?")
            args.append(end)
        if country is not None:
            clauses.append("lower(country) = lower(?)")
            args.append(country)
        return " AND ".join(clauses), args

    def query(self, sql: str, args: list | None = None) -> list[tuple]:
        return self.db.execute(sql, args or []).fetchall()

    # -- METRICS.md ----------------------------------------------------------------------

    def kpis(self, start=None, end=None, country=None) -> dict:
        where, args = self._where(start, end, country)
        revenue, units, orders, customers, first, last = self.query(
            f"""SELECT sum(revenue), sum(quantity), count(DISTINCT invoice_no), count(DISTINCT customer_id),
                       min(ts), max(ts) FROM sales WHERE {where}""",
            args,
        )[0]
        c_orders, c_revenue = self.query(
            f"SELECT count(DISTINCT invoice_no), sum(revenue) FROM cancels WHERE {where}", args
        )[0]
        revenue = revenue or Decimal(0)
        units = units or 0
        return {
            "currency": self.currency,
            "revenue": r2(revenue),
            "units_sold": int(units),
            "orders": orders,
            "customers": customers,
            "average_order_value": r2(revenue / orders) if orders else None,
            "units_per_order": r2(Decimal(units) / orders) if orders else None,
            "cancelled_orders": c_orders,
            "cancelled_revenue": r2(c_revenue or Decimal(0)),
            "first_sale": first,
            "last_sale": last,
            "comparison": None,
        }

    # -- F2: customers -------------------------------------------------------------------------

    def customers(self, start=None, end=None, country=None) -> dict:
        """ANALYTICS.md F2 in SQL: histories are the country's sales lines of each customer, any date."""
        cw, ca = self._where(None, None, country)
        first_day, last_day = self.query(f"SELECT min(d), max(d) FROM sales WHERE {cw}", ca)[0]
        counts = dict.fromkeys(
            ("customers", "new_customers", "returning_customers", "repeat_customers", "multi_order_customers"), 0
        )
        if first_day is None and (start is None or end is None):
            return {**counts, "months": []}
        start, end = start or first_day, end or last_day
        history = f"(SELECT customer_id, min(d) AS first FROM sales WHERE {cw} AND customer_id IS NOT NULL GROUP BY 1)"
        ww, wa = self._where(start, end, country)
        inside = f"(SELECT * FROM sales WHERE {ww} AND customer_id IS NOT NULL)"
        row = self.query(
            f"""SELECT count(*), count(*) FILTER (WHERE h.first >= ?),
                       count(*) FILTER (WHERE w.orders >= 2),
                       count(*) FILTER (WHERE (SELECT count(DISTINCT invoice_no) FROM sales s
                                               WHERE {cw.replace("country", "s.country")}
                                               AND s.customer_id = w.customer_id AND s.d <= ?) >= 2)
                FROM (SELECT customer_id, count(DISTINCT invoice_no) AS orders FROM {inside} GROUP BY 1) w
                JOIN {history} h USING (customer_id)""",
            [start, *ca, end, *wa, *ca],
        )[0]
        customers, new, repeat, multi = row
        orders = self.query(f"SELECT count(DISTINCT invoice_no) FROM {inside}", wa)[0][0]
        months = []
        month = date(start.year, start.month, 1)
        while month <= end:
            following = self._next(month, "month")
            part_start, part_end = max(month, start), min(following - timedelta(days=1), end)
            pw, pa = self._where(part_start, part_end, country)
            active, fresh, new_revenue, returning_revenue = self.query(
                f"""SELECT count(DISTINCT s.customer_id),
                           count(DISTINCT s.customer_id) FILTER (WHERE h.first BETWEEN ? AND ?),
                           coalesce(sum(s.revenue) FILTER (WHERE h.first BETWEEN ? AND ?), 0),
                           coalesce(sum(s.revenue) FILTER (WHERE NOT (h.first BETWEEN ? AND ?)), 0)
                    FROM (SELECT * FROM sales WHERE {pw} AND customer_id IS NOT NULL) s
                    JOIN {history} h USING (customer_id)""",
                [part_start, part_end] * 3 + pa + ca,
            )[0]
            months.append(
                {
                    "period": month,
                    "customers": active,
                    "new_customers": fresh,
                    "returning_customers": active - fresh,
                    "new_customer_revenue": r2(new_revenue),
                    "returning_customer_revenue": r2(returning_revenue),
                }
            )
            month = following

        def pct(part: int) -> float | None:
            return r2(Decimal(100 * part) / customers) if customers else None

        return {
            "customers": customers,
            "new_customers": new,
            "returning_customers": customers - new,
            "returning_customer_pct": pct(customers - new),
            "repeat_customers": repeat,
            "repeat_purchase_rate_pct": pct(repeat),
            "multi_order_customers": multi,
            "multi_order_customer_rate_pct": pct(multi),
            "orders_per_customer": r2(Decimal(orders) / customers) if customers else None,
            "months": months,
        }

    # -- F1: comparison with an earlier window ------------------------------------------------

    _CHANGED: ClassVar[dict[str, bool]] = {  # compared fields: True for amounts (2 places)
        "revenue": True,
        "units_sold": False,
        "orders": False,
        "customers": False,
        "average_order_value": True,
        "units_per_order": True,
        "cancelled_orders": False,
        "cancelled_revenue": True,
    }

    def compared(self, start=None, end=None, country=None, mode="previous_period") -> dict:
        """ANALYTICS.md F1, spelled out: windows by calendar arithmetic, deltas of reported values."""
        current = self.kpis(start, end, country)
        if start is None or end is None:
            where, args = self._where(None, None, country)
            first, last = self.query(f"SELECT min(d), max(d) FROM sales WHERE {where}", args)[0]
            if first is None:
                return current
            start, end = start or first, end or last
        if mode == "previous_period":
            days = (end - start).days + 1
            before_start, before_end = start - timedelta(days=days), start - timedelta(days=1)
        else:

            def back(d: date) -> date:
                return date(d.year - 1, d.month, 28 if (d.month, d.day) == (2, 29) else d.day)

            before_start, before_end = back(start), back(end)
        before = self.kpis(before_start, before_end, country)
        change = {}
        for name, amount in self._CHANGED.items():
            now, then = current[name], before[name]
            if now is None or then is None:
                change[name] = {"abs": None, "pct": None}
                continue
            delta = float(Decimal(str(now)) - Decimal(str(then))) if amount else now - then
            pct = r2(Decimal(100) * Decimal(str(delta)) / Decimal(str(then))) if then else None
            change[name] = {"abs": delta, "pct": pct}
        previous = {k: v for k, v in before.items() if k not in ("currency", "comparison")}
        current["comparison"] = {
            "mode": mode,
            "start": start,
            "end": end,
            "previous_start": before_start,
            "previous_end": before_end,
            "previous": previous,
            "change": change,
        }
        return current

    # the first day of a period, spelled as calendar arithmetic (not truncation)
    _PERIOD_SQL: ClassVar[dict[str, str]] = {
        "day": "d",
        "week": "d - CAST(isodow(d) - 1 AS INTEGER)",  # ISO weeks: Monday is day 1
        "month": "make_date(year(d), month(d), 1)",
        "year": "make_date(year(d), 1, 1)",
    }

    @staticmethod
    def _next(period: date, freq: str) -> date:
        if freq == "day":
            return period + timedelta(days=1)
        if freq == "week":
            return period + timedelta(days=7)
        if freq == "month":
            return date(period.year + period.month // 12, period.month % 12 + 1, 1)
        return date(period.year + 1, 1, 1)

    def series(self, freq="month", start=None, end=None, country=None) -> list[dict]:
        where, args = self._where(start, end, country)
        rows = self.query(
            f"""SELECT {self._PERIOD_SQL[freq]} AS period, sum(revenue), sum(quantity), count(DISTINCT invoice_no)
                FROM sales WHERE {where} GROUP BY period""",
            args,
        )
        if not rows:
            return []
        buckets = {period: (revenue, int(units), orders) for period, revenue, units, orders in rows}
        period, last = min(buckets), max(buckets)
        # the window a period must lie in to be whole: the dates, or the country's first / last sale day
        country_where, country_args = self._where(None, None, country)
        first_day, last_day = self.query(f"SELECT min(d), max(d) FROM sales WHERE {country_where}", country_args)[0]
        window = (start or first_day, end or last_day)
        points, previous = [], None
        while period <= last:
            revenue, units, orders = buckets.get(period, (Decimal(0), 0, 0))
            growth = r2((revenue - previous) / previous * 100) if previous else None
            following = self._next(period, freq)
            points.append(
                {
                    "period": period,
                    "revenue": r2(revenue),
                    "units_sold": units,
                    "orders": orders,
                    "growth_pct": growth,
                    "partial": period < window[0] or following - timedelta(days=1) > window[1],
                }
            )
            previous = revenue
            period = following
        return points

    def countries_table(self, start=None, end=None) -> list[dict]:
        where, args = self._where(start, end, None)
        rows = self.query(
            f"""SELECT country, sum(revenue), sum(quantity), count(DISTINCT invoice_no), count(DISTINCT customer_id)
                FROM sales WHERE {where} GROUP BY country""",
            args,
        )
        return [
            {"country": c, "revenue_exact": r, "units_sold": int(u), "orders": o, "customers": k}
            for c, r, u, o, k in rows
        ]

    def top_countries(self, by="revenue", limit=10, order="desc", start=None, end=None, country=None) -> list[dict]:
        table = self.countries_table(start, end)
        if country is not None:
            table = [row for row in table if row["country"].lower() == country.lower()]
        key = {"revenue": "revenue_exact"}.get(by, by)
        # stable sorts: name ascending first, then the figure
        table.sort(key=lambda row: row["country"])
        table.sort(key=lambda row: row[key], reverse=order == "desc")
        total = sum((row["revenue_exact"] for row in table), Decimal(0))
        return [
            {
                "rank": rank,
                "country": row["country"],
                "revenue": r2(row["revenue_exact"]),
                "units_sold": row["units_sold"],
                "orders": row["orders"],
                "customers": row["customers"],
                "revenue_share_pct": r2(row["revenue_exact"] / total * 100) if total else None,
            }
            for rank, row in enumerate(table[:limit], start=1)
        ]

    def top_products(self, country: str | None, start=None, end=None) -> list[dict]:
        where, args = self._where(start, end, country)
        excluded = ", ".join(f"'{code}'" for code in NOT_PRODUCTS)
        products = self.query(
            f"""SELECT upper(stock_code) AS code, sum(revenue) AS rev, sum(quantity) FROM sales
                WHERE {where} AND upper(stock_code) NOT IN ({excluded})
                  AND NOT lower(stock_code) LIKE 'gift\\_%' ESCAPE '\\'
                GROUP BY code ORDER BY rev DESC, code ASC LIMIT 10""",
            args,
        )
        result = []
        for code, revenue, units in products:
            described = self.query(
                f"""SELECT description, count(*) AS n FROM sales
                    WHERE {where} AND upper(stock_code) = ? AND description IS NOT NULL
                    GROUP BY description ORDER BY n DESC, description ASC LIMIT 1""",
                [*args, code],
            )
            result.append(
                {
                    "stock_code": code,
                    "description": described[0][0] if described else None,
                    "revenue": r2(revenue),
                    "units_sold": int(units),
                }
            )
        return result

    def country_detail(self, country: str, start=None, end=None) -> dict:
        stored = next(name for name in self.countries if name.lower() == country.lower())
        ranking = [row["country"] for row in self.top_countries(limit=1000, start=start, end=end)]
        return {
            "country": stored,
            "rank": ranking.index(stored) + 1 if stored in ranking else None,
            "kpis": self.kpis(start, end, stored),
            "series": self.series("month", start, end, stored),
            "top_products": self.top_products(stored, start, end),
        }

    _LINE_ORDER: ClassVar[dict[str, str]] = {
        "invoice_date": "ts, line",
        "-invoice_date": "ts DESC, line DESC",
        "quantity": "quantity, ts, line",
        "-quantity": "quantity DESC, ts, line",
        "unit_price": "price, ts, line",
        "-unit_price": "price DESC, ts, line",
        "line_revenue": "revenue, ts, line",
        "-line_revenue": "revenue DESC, ts, line",
    }

    def page(
        self, page=1, size=50, q=None, start=None, end=None, country=None, sort="invoice_date", customer=None
    ) -> dict:
        where, args = self._where(start, end, country)
        if q:
            where += (
                " AND (contains(lower(invoice_no), ?) OR contains(lower(stock_code), ?)"
                " OR contains(lower(coalesce(description, '')), ?) OR CAST(customer_id AS VARCHAR) = ?)"
            )
            args += [q.lower()] * 3 + [q.strip()]
        if customer is not None:
            where += " AND customer_id = ?"
            args.append(customer)
        total = self.query(f"SELECT count(*) FROM sales WHERE {where}", args)[0][0]
        rows = self.query(
            f"""SELECT invoice_no, stock_code, description, quantity, ts, price, customer_id, country, revenue
                FROM sales WHERE {where} ORDER BY {self._LINE_ORDER[sort]} LIMIT ? OFFSET ?""",
            [*args, size, (page - 1) * size],
        )
        items = [
            {
                "invoice_no": inv,
                "stock_code": code,
                "description": desc,
                "quantity": qty,
                "invoice_date": ts,
                "unit_price": float(price),
                "customer_id": customer,
                "country": ctry,
                "line_revenue": r2(revenue),
            }
            for inv, code, desc, qty, ts, price, customer, ctry, revenue in rows
        ]
        return {"items": items, "page": page, "size": size, "total": total, "pages": -(-total // size)}

    # -- F3: cohorts ------------------------------------------------------------------------

    def cohorts(self, start=None, end=None, country=None) -> dict:
        """ANALYTICS.md F3 in SQL: months as year*12+month numbers, every cell listed by a join
        with a generated range of month indexes."""
        cw, ca = self._where(None, None, country)
        first_day, last_day = self.query(f"SELECT min(d), max(d) FROM sales WHERE {cw}", ca)[0]
        if first_day is None and (start is None or end is None):
            return {"start_month": None, "end_month": None, "cohorts": []}
        start, end = start or first_day, end or last_day
        lo, hi = start.year * 12 + start.month - 1, end.year * 12 + end.month - 1
        data_end = self.query("SELECT max(d) FROM sales")[0][0]
        partial = data_end.year * 12 + data_end.month - 1 if (data_end + timedelta(days=1)).day != 1 else None
        rows = self.query(
            f"""WITH lines AS (SELECT customer_id, year(d) * 12 + month(d) - 1 AS m, revenue FROM sales
                               WHERE {cw} AND customer_id IS NOT NULL),
                     firsts AS (SELECT customer_id, min(m) AS cohort FROM lines GROUP BY 1),
                     sizes AS (SELECT cohort, count(*) AS n FROM firsts WHERE cohort BETWEEN ? AND ? GROUP BY 1),
                     cells AS (SELECT s.cohort, s.n, k.k FROM sizes s,
                               LATERAL (SELECT unnest(range(0, ? - s.cohort + 1)) AS k) k),
                     activity AS (SELECT f.cohort, l.m - f.cohort AS k, count(DISTINCT l.customer_id) AS active,
                                         sum(l.revenue) AS revenue
                                  FROM lines l JOIN firsts f USING (customer_id) WHERE l.m <= ? GROUP BY 1, 2)
                SELECT c.cohort, c.n, c.k, coalesce(a.active, 0), coalesce(a.revenue, 0)
                FROM cells c LEFT JOIN activity a ON a.cohort = c.cohort AND a.k = c.k
                ORDER BY c.cohort, c.k""",
            [*ca, lo, hi, hi, hi],
        )

        def month(number: int) -> date:
            return date(number // 12, number % 12 + 1, 1)

        cohorts: list[dict] = []
        for cohort, size, k, active, revenue in rows:
            if not cohorts or cohorts[-1]["cohort"] != month(cohort).strftime("%Y-%m"):
                cohorts.append({"cohort": month(cohort).strftime("%Y-%m"), "customers": size, "months": []})
            cohorts[-1]["months"].append(
                {
                    "month_index": k,
                    "period": month(cohort + k),
                    "active_customers": active,
                    "retention_pct": r2(Decimal(100 * active) / size),
                    "revenue": r2(revenue),
                    "partial": cohort + k == partial,
                }
            )
        return {
            "start_month": month(lo).strftime("%Y-%m"),
            "end_month": month(hi).strftime("%Y-%m"),
            "cohorts": cohorts,
        }

    # -- F4: RFM ---------------------------------------------------------------------------------

    _SEGMENT_SQL = """CASE
        WHEN r = 5 AND f = 1 THEN 'new_customers'
        WHEN r = 5 AND f IN (2, 3) THEN 'potential_loyalists'
        WHEN r = 5 THEN 'champions'
        WHEN r = 4 AND f = 1 THEN 'promising'
        WHEN r = 4 AND f IN (2, 3) THEN 'potential_loyalists'
        WHEN r = 4 THEN 'loyal_customers'
        WHEN r = 3 AND f IN (1, 2) THEN 'about_to_sleep'
        WHEN r = 3 AND f = 3 THEN 'need_attention'
        WHEN r = 3 THEN 'loyal_customers'
        WHEN f IN (1, 2) THEN 'hibernating'
        WHEN f IN (3, 4) THEN 'at_risk'
        ELSE 'cant_lose' END"""
    SEGMENTS = (
        "champions",
        "loyal_customers",
        "potential_loyalists",
        "new_customers",
        "promising",
        "need_attention",
        "about_to_sleep",
        "at_risk",
        "cant_lose",
        "hibernating",
    )

    def rfm_customers(self, start=None, end=None, country=None) -> tuple[date | None, list[dict]]:
        """F4's scores with the contract's SQL formula, every customer, in the list's order."""
        where, args = self._where(start, end, country)
        last = self.query(f"SELECT max(d) FROM sales WHERE {where}", args)[0][0]
        if last is None:
            return None, []
        reference = last + timedelta(days=1)

        def score(order: str) -> str:  # the contract's formula, worst to best, ties by customer id
            return f"1 + (5 * (row_number() OVER (ORDER BY {order}, customer_id) - 1)) // count(*) OVER ()"

        rows = self.query(
            f"""WITH people AS (
                    SELECT customer_id, ? - max(d) AS recency_days, count(DISTINCT invoice_no) AS frequency,
                           round(sum(revenue), 2) AS monetary, sum(revenue) AS exact
                    FROM sales WHERE {where} AND customer_id IS NOT NULL GROUP BY 1),
                scored AS (
                    SELECT *,
                      {score("recency_days DESC")} AS r, {score("frequency")} AS f, {score("monetary")} AS m
                    FROM people)
                SELECT customer_id, recency_days, frequency, monetary, r, f, m, {self._SEGMENT_SQL}, exact
                FROM scored ORDER BY monetary DESC, customer_id""",
            [reference, *args],
        )
        return reference, [
            {
                "customer_id": cid,
                "recency_days": int(rec),
                "frequency": freq,
                "monetary": float(mon),
                "r_score": r,
                "f_score": f,
                "m_score": m,
                "rfm_score": f"{r}{f}{m}",
                "segment": seg,
                "exact": exact,
            }
            for cid, rec, freq, mon, r, f, m, seg, exact in rows
        ]

    def rfm(self, start=None, end=None, country=None) -> dict:
        reference, people = self.rfm_customers(start, end, country)
        total = sum((p["exact"] for p in people), Decimal(0))
        segments = []
        for name in self.SEGMENTS:
            members = [p for p in people if p["segment"] == name]
            n = len(members)
            revenue = sum((p["exact"] for p in members), Decimal(0))
            segments.append(
                {
                    "segment": name,
                    "customers": n,
                    "customers_pct": r2(Decimal(100 * n) / len(people)) if people else None,
                    "revenue": r2(revenue),
                    "revenue_pct": r2(100 * revenue / total) if total else None,
                    "avg_recency_days": r2(Decimal(sum(p["recency_days"] for p in members)) / n) if n else None,
                    "avg_frequency": r2(Decimal(sum(p["frequency"] for p in members)) / n) if n else None,
                    "avg_monetary": r2(revenue / n) if n else None,
                }
            )
        return {"reference_date": reference, "customers": len(people), "revenue": r2(total), "segments": segments}

    # -- one customer -------------------------------------------------------------------------

    def customer(self, customer_id: int, start=None, end=None, country=None) -> dict:
        where, args = self._where(start, end, country)
        mine = f"{where} AND customer_id = ?"
        orders, revenue, units, first, last = self.query(
            f"SELECT count(DISTINCT invoice_no), sum(revenue), sum(quantity), min(ts), max(ts) FROM sales WHERE {mine}",
            [*args, customer_id],
        )[0]
        cw, ca = self._where(None, None, country)
        since = self.query(f"SELECT min(d) FROM sales WHERE {cw} AND customer_id = ?", [*ca, customer_id])[0][0]
        products = self.query(
            f"""WITH lines AS (SELECT upper(stock_code) AS code, * FROM sales WHERE {mine}
                               AND upper(stock_code) NOT IN ('POST', 'DOT', 'M', 'BANK CHARGES', 'AMAZONFEE', 'C2',
                                                             'D', 'S', 'CRUK', 'PADS', 'B')
                               AND NOT starts_with(lower(stock_code), 'gift_')),
                     described AS (SELECT code, description, count(*) AS n FROM lines
                                   WHERE description IS NOT NULL GROUP BY 1, 2),
                     best AS (SELECT code, arg_min(description, (-n, description)) AS description
                              FROM described GROUP BY 1)
                SELECT l.code, b.description, sum(revenue) AS revenue, sum(quantity), count(DISTINCT invoice_no)
                FROM lines l LEFT JOIN best b USING (code) GROUP BY 1, 2 ORDER BY revenue DESC, l.code LIMIT 10""",
            [*args, customer_id],
        )
        return {
            "customer_id": customer_id,
            "customer_since": since,
            "orders": orders,
            "revenue": r2(revenue or Decimal(0)),
            "units_sold": int(units or 0),
            "first_purchase": first,
            "last_purchase": last,
            "top_products": [
                {"stock_code": c, "description": d, "revenue": r2(rv), "units_sold": int(u), "orders": o}
                for c, d, rv, u, o in products
            ],
        }

    # -- F5, F6: products ------------------------------------------------------------------------

    NOT_PRODUCTS = "('POST', 'DOT', 'M', 'BANK CHARGES', 'AMAZONFEE', 'C2', 'D', 'S', 'CRUK', 'PADS', 'B')"

    def _is_product(self) -> str:
        return f"upper(stock_code) NOT IN {self.NOT_PRODUCTS} AND NOT starts_with(lower(stock_code), 'gift_')"

    def product_descriptions(self, start=None, end=None, country=None) -> dict[str, str | None]:
        where, args = self._where(start, end, country)
        rows = self.query(
            f"""SELECT code, arg_min(description, (-n, description)) FROM (
                    SELECT upper(stock_code) AS code, description, count(*) AS n FROM sales
                    WHERE {where} AND description IS NOT NULL GROUP BY 1, 2) GROUP BY 1""",
            args,
        )
        return dict(rows)

    def products_table(self, start=None, end=None, country=None) -> list[dict]:
        """Every product with a sales line in the filters (F5's fields but rank), unordered."""
        where, args = self._where(start, end, country)
        rows = self.query(
            f"""WITH s AS (SELECT upper(stock_code) AS code, sum(revenue) AS revenue, sum(quantity) AS units,
                                  count(DISTINCT invoice_no) AS orders, count(DISTINCT customer_id) AS customers
                           FROM sales WHERE {where} AND {self._is_product()} GROUP BY 1),
                     r AS (SELECT upper(stock_code) AS code, -sum(quantity) AS units, sum(revenue) AS revenue
                           FROM cancels WHERE {where} AND {self._is_product()} GROUP BY 1)
                SELECT s.code, s.revenue, s.units, s.orders, s.customers, coalesce(r.units, 0), coalesce(r.revenue, 0)
                FROM s LEFT JOIN r USING (code)""",
            args + args,
        )
        total = sum((row[1] for row in rows), Decimal(0))
        described = self.product_descriptions(start, end, country)
        return [
            {
                "stock_code": code,
                "description": described.get(code),
                "revenue": r2(revenue),
                "units_sold": int(units),
                "orders": orders,
                "customers": customers,
                "revenue_share_pct": r2(100 * revenue / total) if total else None,
                "returned_units": int(back_units),
                "returned_revenue": r2(back_revenue),
                "return_rate_pct": r2(Decimal(100 * int(back_units)) / int(units)),
                "_total": r2(total),
            }
            for code, revenue, units, orders, customers, back_units, back_revenue in rows
        ]

    def products(self, by="revenue", order="desc", limit=10, min_units=0, start=None, end=None, country=None) -> dict:
        table = self.products_table(start, end, country)
        total = table[0]["_total"] if table else 0.0
        listed = [{k: v for k, v in row.items() if k != "_total"} for row in table if row["units_sold"] >= min_units]
        listed.sort(key=lambda row: row["stock_code"])  # ties: stock code ascending, either way
        listed.sort(key=lambda row: row[by], reverse=order == "desc")
        items = [{"rank": rank, **row} for rank, row in enumerate(listed[:limit], start=1)]
        return {"products": len(table), "revenue": total, "items": items}

    def pairs(self, limit=10, start=None, end=None, country=None) -> dict:
        """F6 by brute force: every pair of every basket counted (DuckDB's self-join)."""
        where, args = self._where(start, end, country)
        baskets = (
            f"(SELECT DISTINCT invoice_no, upper(stock_code) AS code FROM sales WHERE {where} AND {self._is_product()})"
        )
        total = self.query(f"SELECT count(DISTINCT invoice_no) FROM {baskets}", args)[0][0]
        rows = self.query(
            f"""WITH b AS {baskets},
                     n AS (SELECT code, count(*) AS n FROM b GROUP BY 1),
                     p AS (SELECT x.code AS a, y.code AS b, count(*) AS together FROM b x JOIN b y
                           ON x.invoice_no = y.invoice_no AND x.code < y.code GROUP BY 1, 2)
                SELECT p.a, p.b, p.together, na.n, nb.n FROM p JOIN n na ON na.code = p.a JOIN n nb ON nb.code = p.b
                ORDER BY p.together DESC, p.a, p.b LIMIT ?""",
            [*args, limit],
        )
        described = self.product_descriptions(start, end, country)
        items = [
            {
                "rank": rank,
                "stock_code_a": a,
                "description_a": described.get(a),
                "stock_code_b": b,
                "description_b": described.get(b),
                "orders": together,
                "orders_with_a": with_a,
                "orders_with_b": with_b,
                "support_pct": r2(Decimal(100 * together) / total),
                "confidence_a_to_b_pct": r2(Decimal(100 * together) / with_a),
                "confidence_b_to_a_pct": r2(Decimal(100 * together) / with_b),
                "lift": r2(Decimal(together * total) / (with_a * with_b)),
            }
            for rank, (a, b, together, with_a, with_b) in enumerate(rows, start=1)
        ]
        return {"baskets": total, "items": items}

    def product(self, code: str, start=None, end=None, country=None) -> dict:
        key = code.upper()
        where, args = self._where(start, end, country)
        mine = f"{where} AND upper(stock_code) = ?"
        revenue, units, orders, customers = self.query(
            f"SELECT sum(revenue), sum(quantity), count(DISTINCT invoice_no), count(DISTINCT customer_id) FROM sales "
            f"WHERE {mine}",
            [*args, key],
        )[0]
        back_units, back_revenue = self.query(
            f"SELECT -sum(quantity), sum(revenue) FROM cancels WHERE {mine}", [*args, key]
        )[0]
        countries = self.query(
            f"""SELECT country, sum(revenue) AS r, sum(quantity), count(DISTINCT invoice_no),
                       count(DISTINCT customer_id)
                FROM sales WHERE {mine} GROUP BY 1 ORDER BY r DESC, country LIMIT 10""",
            [*args, key],
        )
        units = int(units or 0)
        return {
            "stock_code": key,
            "revenue": r2(revenue or Decimal(0)),
            "units_sold": units,
            "orders": orders,
            "customers": customers,
            "returned_units": int(back_units or 0),
            "returned_revenue": r2(back_revenue or Decimal(0)),
            "return_rate_pct": r2(Decimal(100 * int(back_units or 0)) / units) if units else None,
            "countries": [
                {"country": c, "revenue": r2(r), "units_sold": int(u), "orders": o, "customers": n}
                for c, r, u, o, n in countries
            ],
        }

    def bought_with(self, code: str, limit=10, start=None, end=None, country=None) -> list[tuple[str, int]]:
        """The products in most baskets with `code` (ties by code), and in how many."""
        where, args = self._where(start, end, country)
        baskets = (
            f"(SELECT DISTINCT invoice_no, upper(stock_code) AS code FROM sales WHERE {where} AND {self._is_product()})"
        )
        return self.query(
            f"""WITH b AS {baskets}
                SELECT y.code, count(*) AS n FROM b x JOIN b y ON x.invoice_no = y.invoice_no AND y.code <> x.code
                WHERE x.code = ? GROUP BY 1 ORDER BY n DESC, y.code LIMIT ?""",
            [*args, code.upper(), limit],
        )

"""A small export whose figures are worked out by hand (below each file)."""

from __future__ import annotations

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"

# line revenues: 2.50, 15.00 (postage), 5.00, cancellation 1.25, 3.333; a zero-price line (not a sale)
FIRST = HEADER + (
    "100001,A1,RED MUG,2,1/3/2011 10:00,1.25,1,Germany\n"
    "100001,POST,POSTAGE,1,1/3/2011 10:00,15,1,Germany\n"
    "100002,a1,RED MUG,4,1/10/2011 9:30,1.25,,United Kingdom\n"
    "C100003,A1,RED MUG,-1,1/11/2011 9:30,1.25,2,United Kingdom\n"
    "100004,B2,BLUE BOWL,1,3/1/2011 12:00,3.333,3,United Kingdom\n"
    "100005,B2,BLUE BOWL,5,3/2/2011 12:00,0,3,France\n"
)

FIRST_KPIS = {
    "currency": "GBP",
    "revenue": 25.83,  # 2.50 + 15.00 + 5.00 + 3.333 = 25.833
    "units_sold": 8,  # 2 + 1 + 4 + 1
    "orders": 3,  # 100001, 100002, 100004
    "customers": 2,  # 1 and 3 (100002 has none)
    "average_order_value": 8.61,  # 25.833 / 3
    "units_per_order": 2.67,  # 8 / 3
    "cancelled_orders": 1,
    "cancelled_revenue": 1.25,
    "first_sale": "2011-01-03T10:00:00",
    "last_sale": "2011-03-01T12:00:00",
    "comparison": None,  # F1: none unless asked for
}

# the data runs 3 Jan to 1 Mar 2011: January and March are partial months
FIRST_MONTHS = [
    {"period": "2011-01-01", "revenue": 22.5, "units_sold": 7, "orders": 2, "growth_pct": None, "partial": True},
    {"period": "2011-02-01", "revenue": 0.0, "units_sold": 0, "orders": 0, "growth_pct": -100.0, "partial": False},
    {"period": "2011-03-01", "revenue": 3.33, "units_sold": 1, "orders": 1, "growth_pct": None, "partial": True},
]

# appended to FIRST: one more German order
SECOND = HEADER + "100006,A1,RED MUG,10,3/5/2011 8:00,1.25,1,Germany\n"

SECOND_KPIS = {
    **FIRST_KPIS,
    "revenue": 38.33,  # 25.833 + 12.50 = 38.333
    "units_sold": 18,
    "orders": 4,
    "average_order_value": 9.58,  # 38.333 / 4 = 9.58325
    "units_per_order": 4.5,
    "last_sale": "2011-03-05T08:00:00",
}

"""The invariant auditor: money, stock, coupons and orders agree with each other.

Run by `manage.py audit_invariants` after every load scenario and fault test, and by Celery beat
every minute (the last result is kept in Redis, shown on the sale dashboard with its age, and
exported at /metrics as `shop_invariant_breaches{check=…}`).
Each check is one SQL query that returns the offending rows (empty = holds).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import connection
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

log = logging.getLogger(__name__)
LAST_RESULT_KEY = "audit:last"
LAST_META_KEY = "audit:last:meta"  # when the last audit ran and how long it took (the sale dashboard)

PAID = "('PAID','CONFIRMED')"

CHECKS: dict[str, tuple[str, str]] = {
    # name: (what must hold, SQL returning the rows that break it)
    "stock_nonnegative": (
        "stock quantity and reservations are never negative and reserved <= quantity",
        "SELECT product_id, quantity, reserved_quantity FROM inventory_stock "
        "WHERE quantity < 0 OR reserved_quantity < 0 OR reserved_quantity > quantity",
    ),
    "stock_reserved_matches_reservations": (
        "reserved_quantity equals the sum of ACTIVE reservations",
        "SELECT s.product_id, s.reserved_quantity, COALESCE(r.q, 0) FROM inventory_stock s "
        "LEFT JOIN (SELECT product_id, SUM(quantity) q FROM inventory_reservation WHERE status = 'ACTIVE' "
        "GROUP BY product_id) r ON r.product_id = s.product_id WHERE s.reserved_quantity <> COALESCE(r.q, 0)",
    ),
    "stock_sold_matches_paid_orders": (
        "units consumed from stock equal the units of paid and confirmed orders",
        "SELECT p.id, COALESCE(c.q, 0), COALESCE(o.q, 0) FROM shop_product p "
        "LEFT JOIN (SELECT product_id, SUM(quantity) q FROM inventory_reservation WHERE status = 'CONSUMED' "
        "GROUP BY product_id) c ON c.product_id = p.id "
        "LEFT JOIN (SELECT i.product_id, SUM(i.quantity) q FROM orders_orderitem i JOIN orders_order o "
        f"ON o.id = i.order_id WHERE o.status IN {PAID} GROUP BY i.product_id) o ON o.product_id = p.id "
        "WHERE COALESCE(c.q, 0) <> COALESCE(o.q, 0)",
    ),
    "closed_orders_hold_no_stock": (
        "EXPIRED and CANCELLED orders hold no active reservation",
        "SELECT o.id, o.status FROM orders_order o JOIN inventory_reservation r ON r.order_id = o.id "
        "WHERE r.status = 'ACTIVE' AND o.status IN ('EXPIRED', 'CANCELLED')",
    ),
    "wallet_matches_ledger": (
        "every wallet balance equals the sum of its ledger",
        "SELECT w.user_id, w.balance, COALESCE(h.s, 0) FROM shop_pointwallet w "
        "LEFT JOIN (SELECT user_id, SUM(amount) s FROM shop_pointhistory GROUP BY user_id) h "
        "ON h.user_id = w.user_id WHERE w.balance <> COALESCE(h.s, 0) "
        "UNION ALL SELECT h.user_id, NULL, SUM(h.amount) FROM shop_pointhistory h "
        "LEFT JOIN shop_pointwallet w ON w.user_id = h.user_id WHERE w.user_id IS NULL GROUP BY h.user_id",
    ),
    "wallet_in_range": (
        "0 <= balance <= 10,000,000",
        "SELECT user_id, balance FROM shop_pointwallet WHERE balance < 0 OR balance > 10000000",
    ),
    "coupon_issued_matches": (
        "issued_quantity equals the user coupons issued, and never exceeds total_quantity",
        "SELECT c.id, c.issued_quantity, c.total_quantity, COALESCE(u.n, 0) FROM shop_coupon c "
        "LEFT JOIN (SELECT coupon_id, COUNT(*) n FROM shop_usercoupon GROUP BY coupon_id) u "
        "ON u.coupon_id = c.id WHERE c.issued_quantity <> COALESCE(u.n, 0) OR c.issued_quantity > c.total_quantity",
    ),
    "paid_orders_have_payment_and_debit": (
        "PAID/CONFIRMED orders have a completed payment and a debit of their final amount",
        "SELECT o.id, o.status, p.status, h.amount FROM orders_order o "
        "LEFT JOIN payments_payment p ON p.order_id = o.id "
        "LEFT JOIN shop_pointhistory h ON h.order_id = o.id AND h.type = 'USE' "
        f"WHERE o.status IN {PAID} AND (p.status IS NULL OR p.status <> 'COMPLETED' "
        "OR h.amount IS NULL OR h.amount <> -o.final_amount)",
    ),
    "only_paid_orders_are_debited": (
        "a debit or completed payment exists only for a PAID/CONFIRMED order (or a cancelled one refunded)",
        "SELECT o.id, o.status FROM orders_order o JOIN shop_pointhistory h ON h.order_id = o.id AND h.type = 'USE' "
        f"LEFT JOIN shop_pointhistory r ON r.order_id = o.id AND r.type = 'REFUND' "
        f"WHERE o.status NOT IN {PAID} AND NOT (o.status = 'CANCELLED' AND r.id IS NOT NULL)",
    ),
    "refunds_match_cancelled_payments": (
        "a refund exists exactly for cancelled paid orders, for the amount paid",
        "SELECT o.id, o.status, p.status, r.amount FROM orders_order o JOIN payments_payment p ON p.order_id = o.id "
        "LEFT JOIN shop_pointhistory r ON r.order_id = o.id AND r.type = 'REFUND' "
        "WHERE (p.status = 'REFUNDED') <> (r.id IS NOT NULL AND o.status = 'CANCELLED') "
        "OR (r.id IS NOT NULL AND r.amount <> p.amount)",
    ),
    "used_coupons_belong_to_paid_orders": (
        "a USED coupon was used by a PAID/CONFIRMED order; a held coupon backs an unpaid order",
        "SELECT u.id, u.status, o.status FROM shop_usercoupon u LEFT JOIN orders_order o "
        "ON o.id = COALESCE(u.used_order_id, u.held_order_id) "
        f"WHERE (u.status = 'USED' AND (o.id IS NULL OR o.status NOT IN {PAID})) "
        "OR (u.status = 'ISSUED' AND u.held_order_id IS NOT NULL AND (o.id IS NULL OR o.status <> 'PENDING_PAYMENT'))",
    ),
}


@dataclass
class AuditResult:
    breaches: dict[str, list[tuple]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(self.breaches.values())

    def report(self, limit: int = 10) -> str:
        lines = []
        for name, (meaning, _) in CHECKS.items():
            rows = self.breaches.get(name, [])
            lines.append(
                f"{'OK  ' if not rows else 'FAIL'} {name}: {meaning}" + (f" — {len(rows)} breach(es)" if rows else "")
            )
            lines.extend(f"       {row}" for row in rows[:limit])
        verdict = "all invariants hold" if self.ok else "INVARIANTS BROKEN"
        lines.append(f"{verdict} ({len(CHECKS)} checks, {self.seconds:.2f} s)")
        return "\n".join(lines)


def audit_invariants() -> AuditResult:
    started = time.monotonic()
    result = AuditResult()
    with connection.cursor() as cursor:
        for name, (_, sql) in CHECKS.items():
            cursor.execute(sql)
            result.breaches[name] = [tuple(row) for row in cursor.fetchall()]
    result.seconds = time.monotonic() - started
    try:
        cache.set(LAST_RESULT_KEY, {n: len(r) for n, r in result.breaches.items()}, None)
        cache.set(LAST_META_KEY, {"at": time.time(), "seconds": round(result.seconds, 3), "ok": result.ok}, None)
    except Exception:  # noqa: BLE001 - the audit result matters more than its export
        log.warning("could not store the audit result in Redis")
    return result


class AuditCollector:
    """Exports the last audit result (from Redis) at /metrics in any process."""

    def collect(self):
        gauge = GaugeMetricFamily(
            "shop_invariant_breaches", "Rows breaking each invariant at the last audit", labels=["check"]
        )
        try:
            last = cache.get(LAST_RESULT_KEY) or {}
        except Exception:  # noqa: BLE001
            last = {}
        for name, count in last.items():
            gauge.add_metric([name], count)
        yield gauge


_registered = False


def register_collector() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(AuditCollector())
        _registered = True

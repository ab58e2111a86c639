"""The live flash-sale dashboard in the admin (`/admin/sale/`): staff only (`admin_view`).

One page; its script asks `data` every few seconds for everything at once (one request per
refresh, see `dashboard.selectors.sale_snapshot`); the buttons POST to `control`, which calls the same
guarded services as the admin actions (`orders.queue`) and needs the change permission on flash-sale
products. A refusal (e.g. the broker did not acknowledge a resume's wake-up) is answered and shown.
"""

from __future__ import annotations

import logging

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from common.errors import DomainError
from dashboard.selectors import sale_snapshot
from orders.models import FlashSaleProduct
from orders.queue.controls import queue_close, queue_pause, queue_resume

log = logging.getLogger(__name__)

CHANGE_PERMISSION = "orders.change_flashsaleproduct"

ACTIONS = {
    "pause": (lambda pk: queue_pause(product_id=pk), "paused: its queued requests wait"),
    "resume": (lambda pk: queue_resume(product_id=pk), "resumed: waiting requests are being answered"),
    "close": (lambda pk: queue_close(product_id=pk, closed=True), "flagged sold out: new requests are refused"),
    "reopen": (lambda pk: queue_close(product_id=pk, closed=False), "sold-out flag cleared: requests are admitted"),
}


@require_GET
def dashboard_page(request: HttpRequest):
    context = {
        **admin.site.each_context(request),
        "title": "Flash sale — live",
        "can_change": request.user.has_perm(CHANGE_PERMISSION),
    }
    return TemplateResponse(request, "dashboard/sale.html", context)


@require_GET
def dashboard_data(request: HttpRequest):
    since = request.GET.get("since", "")
    snapshot = sale_snapshot(since=int(since) if since.isdigit() else None)
    snapshot["canChange"] = request.user.has_perm(CHANGE_PERMISSION)
    return JsonResponse(snapshot)


def _answer(ok: bool, message: str, status: int = 200, code: str | None = None) -> JsonResponse:
    return JsonResponse({"ok": ok, "message": message, "code": code}, status=status)


@require_POST
def dashboard_control(request: HttpRequest):
    if not request.user.has_perm(CHANGE_PERMISSION):
        return _answer(False, "You need the change permission on flash-sale products.", 403, "FORBIDDEN")
    action = ACTIONS.get(request.POST.get("action", ""))
    product_id = request.POST.get("productId", "")
    if action is None or not product_id.isdigit():
        return _answer(False, "Unknown action or product.", 400, "INVALID_INPUT")
    if not FlashSaleProduct.objects.filter(pk=int(product_id), is_flash_sale=True).exists():
        return _answer(False, f"Product {product_id} is not a flash-sale product.", 404, "NOT_FOUND")
    run, done = action
    try:
        run(int(product_id))
    except DomainError as exc:
        log.warning("dashboard: %s of product %s refused: %s", request.POST["action"], product_id, exc.code)
        return _answer(False, f"Product {product_id}: {exc.message}", exc.status, exc.code)
    log.info("dashboard: %s %s product %s", request.user, request.POST["action"], product_id)
    return _answer(True, f"Product {product_id} {done}.")

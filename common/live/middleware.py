"""`LiveMetricsMiddleware`: times every request into `common.live.recorder` (the sale dashboard) and
the Prometheus request metrics (`common.live.prometheus`): memory only, a few µs."""

from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from common.live.prometheus import observe_response
from common.live.recorder import BUSINESS_GROUPS, RECORDER, group_of


def _observe(request, response, started: float) -> None:
    seconds = time.perf_counter() - started
    match = request.resolver_match
    url_name = match.url_name if match is not None else None
    group = group_of(url_name, request.method, request.path_info)
    status = response.status_code
    observe_response(url_name or "<unnamed view>", request.method, status, seconds)
    code = None
    if 400 <= status < 500 and group in BUSINESS_GROUPS:
        data = getattr(response, "data", None)  # a DRF error answer: the envelope before rendering
        if isinstance(data, dict):
            code = data.get("errorCode")
    RECORDER.observe_request(group, status, seconds, code)


class LiveMetricsMiddleware:
    """Sync and async capable, so it adds no thread hop to the ASGI (SSE) process."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _observe(request, response, started)
        return response

    async def __acall__(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        _observe(request, response, started)
        return response

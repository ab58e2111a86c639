from django.urls import path

from common.sse.views import sse_subscribe

urlpatterns = [
    path("subscribe/<int:user_id>", sse_subscribe, name="sse-subscribe"),
]

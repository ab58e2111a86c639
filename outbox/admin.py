"""Outbox admin: the events (read-only, with the pipeline's lag above them), the relay's checkpoint,
and the dead letters an operator replays (through the same inbox: a replay of an event applied
meanwhile does nothing)."""

from django.contrib import admin, messages

from common.admin import ReadOnlyAdminMixin
from outbox.dead_letters import dead_letter_replay
from outbox.models import DeadLetter, FallbackWatermark, OutboxEvent, ProcessedEvent, RelayCheckpoint
from outbox.selectors import outbox_state


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "type", "aggregatetype", "aggregateid", "created_at")
    # A created_at range filter, not `date_hierarchy`: that one needs MySQL's time zone tables
    # (CONVERT_TZ) whenever TIME_ZONE is not UTC, and answered 500 without them.
    list_filter = ("type", "aggregatetype", "created_at")
    search_fields = ("=id", "=aggregateid")
    show_full_result_count = False  # COUNT(*) over the whole table is slow; the outbox is large

    def changelist_view(self, request, extra_context=None):
        """Above the list: how far the relay and the consumer lag and how many dead letters wait (the
        same figures as the /metrics gauges)."""
        return super().changelist_view(request, {**(extra_context or {}), "outbox_state": outbox_state()})


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("event_id", "consumer", "processed_at")
    list_filter = ("consumer",)
    search_fields = ("=event_id",)
    show_full_result_count = False


@admin.register(RelayCheckpoint)
class RelayCheckpointAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "log_file", "log_pos", "last_event_created_at", "updated_at")


@admin.register(FallbackWatermark)
class FallbackWatermarkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "position", "updated_at")


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "consumer",
        "event_type",
        "event_id",
        "topic",
        "attempts",
        "short_error",
        "created_at",
        "replayed_at",
    )
    list_filter = ("consumer", "event_type", ("replayed_at", admin.EmptyFieldListFilter))
    search_fields = ("=event_id", "error")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["replay"]
    admin_allows = ("delete",)  # viewable, not editable; `replay` is the one operation

    @admin.display(description="error")
    def short_error(self, dead: DeadLetter) -> str:
        return dead.error[:120]

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("outbox.change_deadletter")

    @admin.action(description="Replay the selected dead letters (idempotent)", permissions=["replay"])
    def replay(self, request, queryset):
        applied = already = 0
        for dead in queryset.order_by("created_at", "id"):
            try:
                if dead_letter_replay(dead_letter_id=dead.pk):
                    applied += 1
                else:
                    already += 1
            except Exception as exc:  # noqa: BLE001 - reported per letter; the rest are still replayed
                self.message_user(request, f"{dead}: {type(exc).__name__}: {exc}", messages.ERROR)
        if applied or already:
            self.message_user(
                request, f"Replayed: {applied} applied now, {already} had been applied already.", messages.SUCCESS
            )

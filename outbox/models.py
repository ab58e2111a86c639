import uuid

from django.db import models


class OutboxEvent(models.Model):
    """Insert-only, in the columns Debezium's outbox event router expects.

    Written in the business transaction by `outbox.services.outbox_enqueue`; relayed to Kafka from
    the binary log (`manage.py outbox_relay`, or Debezium in docker); purged by age.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    aggregatetype = models.CharField(max_length=64)
    aggregateid = models.CharField(max_length=64)
    type = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "outbox_event"

    def __str__(self) -> str:
        return f"{self.type} {self.aggregatetype}:{self.aggregateid}"


class ProcessedEvent(models.Model):
    """The inbox: an event id a consumer has applied, written in the same transaction as the effect."""

    consumer = models.CharField(max_length=64)
    event_id = models.CharField(max_length=64)
    processed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "outbox_processed_event"
        constraints = [models.UniqueConstraint(fields=["consumer", "event_id"], name="uniq_inbox_consumer_event")]

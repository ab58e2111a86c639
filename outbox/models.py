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

    OUTBOX_CONSUMER = "outbox"  # the outbox consumer's name here (the fallback and replay apply as it too)

    consumer = models.CharField(max_length=64)
    event_id = models.CharField(max_length=64)
    processed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "outbox_processed_event"
        constraints = [models.UniqueConstraint(fields=["consumer", "event_id"], name="uniq_inbox_consumer_event")]


class RelayCheckpoint(models.Model):
    """Where `manage.py outbox_relay` resumes: the binlog position just after the last transaction
    whose outbox rows the broker acknowledged (file/position, which MySQL and MariaDB both accept)."""

    RELAY = "outbox_relay"  # the name of `manage.py outbox_relay`'s row

    name = models.CharField(max_length=64, primary_key=True)
    log_file = models.CharField(max_length=255)
    log_pos = models.PositiveBigIntegerField()
    last_event_created_at = models.DateTimeField(null=True, blank=True)  # newest row relayed (for lag)
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "outbox_relay_checkpoint"

    def __str__(self) -> str:
        return f"{self.name} at {self.log_file}:{self.log_pos}"


class FallbackWatermark(models.Model):
    """The fallback's progress: every outbox row created before `position` was applied (or
    dead-lettered) when the fallback last looked. It rescans a margin before it (late commits)."""

    FALLBACK = "outbox"  # the name of the outbox fallback's row

    name = models.CharField(max_length=64, primary_key=True)
    position = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "outbox_fallback_watermark"

    def __str__(self) -> str:
        return f"{self.name} at {self.position.isoformat()}"


class DeadLetter(models.Model):
    """A message a consumer gave up on after its retries; an operator replays it from the admin.

    One row per (consumer, event id): a message that dead-letters again updates its row.
    Messages without a readable event id use `<topic>/<partition>/<offset>` instead.
    """

    consumer = models.CharField(max_length=64)
    event_id = models.CharField(max_length=300)
    event_type = models.CharField(max_length=64, blank=True)
    topic = models.CharField(max_length=255, blank=True)
    partition = models.IntegerField(null=True, blank=True)
    offset = models.BigIntegerField(null=True, blank=True)
    key = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    payload = models.TextField(blank=True)
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "outbox_dead_letter"
        constraints = [models.UniqueConstraint(fields=["consumer", "event_id"], name="uniq_dead_letter_consumer_event")]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.event_type or '?'} {self.event_id}"

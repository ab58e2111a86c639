from __future__ import annotations

from django.db import models


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key. Claimed in its own short transaction (IN_FLIGHT), completed
    inside the business transaction (DONE + the response), deleted if the business transaction
    rolled back (so the client may retry with the same key)."""

    class Status(models.TextChoices):
        IN_FLIGHT = "IN_FLIGHT"
        DONE = "DONE"

    user_id = models.BigIntegerField(help_text="0 for anonymous callers")
    # Binary collation: `k1` and `K1` are two keys (the default collation is case-insensitive).
    key = models.CharField(max_length=255, db_collation="utf8mb4_bin")
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "key"], name="uniq_idempotency_user_key")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} {self.status}"

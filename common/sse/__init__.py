"""Server-sent events: one channel per user (`user-<id>`), readable only by that user.

- `storage`: django-eventstream's storage and channel manager as configured in settings, the trim;
- `push`: storing and publishing events (one at a time after a commit, or in bulk inside one);
- `notify`: the outbox handlers' notifications, stored with their effects and published after commit;
- `views` / `urls`: `GET /api/sse/subscribe/{userId}` and the short-lived tokens that open it.
"""

"""Queued checkout. Flash-sale requests (Flow 3, `POST /checkout/queue`): admission (web, `admission.py`),
batch allocation (consumer, `allocation.py`), operator switches (`controls.py`); Redis keys and counters
in `keys.py`. Whole checkouts (`POST /checkout`, ORDER requests, served one by one through the synchronous
use case, with synchronous failover): `checkout.py`, which has its own docstring. Both kinds share the
request table, the topic and the consumer.

The request row is the claim; the Kafka message is only a wake-up that names it.

Web, `queue_request_enqueue` (runs outside any transaction: it talks to Kafka):
  1. validate the product; admission in Redis (one script): refuse a product flagged sold out,
     else take the next queue position;
  2. INSERT the row (QUEUED, live=1), committed at once (autocommit). The unique key
     (user, product, live) is the one-live-request rule, enforced by the database;
  3. produce {requestId, ...} keyed `product:<id>` and wait for the broker's ack (bounded);
  4. no ack: *withdraw* the claim, `DELETE ... WHERE status = 'QUEUED'`. Deleted: 503
     QUEUE_UNAVAILABLE and nothing is recorded. Not deleted: the consumer served it already (the
     message did land, or the row was swept up, see below), so the answer is 202 after all.

With an Idempotency-Key the row carries the key (unique per user), inserted in step 2. A retry
whose first attempt died after that INSERT (its web worker killed: the answer was never stored, and
the retry took over the stale key) finds the row first and answers with it instead of queueing a
second request: still QUEUED, its message is produced again (the first attempt may have died before
producing it; a second message for an answered row does nothing) and the answer follows steps 3-4;
already answered, the 202 names it at once.

Consumer, `queue_process_batch`: for each product in the batch, every QUEUED row of that product
up to the newest row the batch names is answered, oldest first (row id = admission order), in
chunks of one transaction each: lock the rows, lock the stock row once, allocate while stock lasts,
bulk-create orders and order items, reserve their stock in one batch (inventory), mark the rows
COMPLETED / FAILED, store their SSE events (`common.sse.push.SseBatch`); after commit, publish the events
and refresh the Redis counters and sold-out flag. It only ever touches rows it finds QUEUED under
its lock, so:
  - a replayed batch (crash before the offset commit) finds its rows done and does nothing;
  - a message whose claim was withdrawn (it landed after the 503), or that belongs to another
    database sharing the topic, finds no row and does nothing;
  - a claim whose message never left (the web process died between steps 2 and 3) is answered by
    the next batch of the same product, or by an operator "process waiting requests" (a wake
    message), so it is neither lost nor blocking its user forever;
  - a withdrawal racing the consumer is serialized by the row lock: exactly one of them wins;
  - a paused product (FlashSaleControl) is skipped: its rows stay QUEUED and its offsets move on;
    resuming sends a wake message, and that batch answers every waiting row in admission order.

Why not produce first and insert after the ack: the one-live-request check would then come after the
message is on the queue; two concurrent requests of one user would both be queued, and a message
whose insert failed (or whose web process died) could no longer be told from a legitimate one.

Redis holds only what can be lost: positions (`queue:pos:<id>`), answered counts (`queue:done:<id>`),
the consumer's sold-out flag (`queue:soldout:<id>`, expires after QUEUE_SOLD_OUT_FLAG_SECONDS so a
restocked product is never refused for long) and the operator's flag (`queue:closed:<id>`).
"""

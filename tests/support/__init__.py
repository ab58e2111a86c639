"""The test harness every test uses, from one app's tests to the fault and cluster tests.

- `ports`: a free loopback port, waiting until something listens on one;
- `waiting`: polling with a deadline (`wait_until`, `poll`);
- `processes`: the project's command lines, the one environment builder for child processes, and
  `Child` / `Children`, processes in process groups of their own, always stopped by their own ids;
- `kafka`: fast consumer-group timings, reading a topic from its start;
- `sse`: a raw server-sent-events client and the payload of a stored SSE event;
- `fixtures`: `children`, `private_kafka` and `throwaway_redis`, registered for every test by the root
  conftest.

What belongs to one app (the queue's builders, the outbox processes, the fault tests' private copy
of the system) stays with that app's tests and builds on these.
"""

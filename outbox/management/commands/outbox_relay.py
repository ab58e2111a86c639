import signal

from django.core.management.base import BaseCommand

from outbox.metrics import serve_metrics
from outbox.relay import Relay


class Command(BaseCommand):
    help = (
        "Relay committed outbox rows from the binary log to Kafka (Debezium outbox format). "
        "One relay is active per database; others stand by. Stops cleanly on SIGTERM."
    )

    def add_arguments(self, parser):
        parser.add_argument("--server-id", type=int, default=None, help="replication client id (default: random)")
        parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")

    def handle(self, *args, server_id=None, metrics_port=None, **options):
        relay = Relay(server_id=server_id)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: relay.stop())
        serve_metrics("OUTBOX_RELAY_METRICS_PORT", metrics_port)
        self.stdout.write(f"outbox relay starting for database {relay.schema!r}")
        self.stdout.flush()
        relay.run()
        self.stdout.write("outbox relay stopped")

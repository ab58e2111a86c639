from django.core.management.base import BaseCommand, CommandError

from common.kafka import ConsumerRunner, load_consumers


class Command(BaseCommand):
    help = "Run one registered Kafka consumer (see common/kafka.py). Stops cleanly on SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="consumer name; omit with --list")
        parser.add_argument("--list", action="store_true", help="list registered consumers")

    def handle(self, *args, name=None, list=False, **options):
        registry = load_consumers()
        if list or not name:
            for spec in registry.values():
                self.stdout.write(f"{spec.name}: topics={','.join(spec.topics)} group={spec.group}")
            return
        if name not in registry:
            raise CommandError(f"unknown consumer {name!r}; known: {', '.join(sorted(registry)) or 'none'}")
        runner = ConsumerRunner(registry[name])
        runner.install_signal_handlers()
        self.stdout.write(f"consumer {name} starting")
        batches = runner.run()
        self.stdout.write(f"consumer {name} stopped after {batches} batches")

from django.core.management.base import BaseCommand, CommandError

from common.audit import audit_invariants


class Command(BaseCommand):
    help = "Check that stock, money, coupons and orders agree; non-zero exit on any breach."

    def handle(self, *args, **options):
        result = audit_invariants()
        self.stdout.write(result.report())
        if not result.ok:
            raise CommandError("invariants broken")

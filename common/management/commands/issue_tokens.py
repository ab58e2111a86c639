"""Write JWT access tokens for a range of users, for load tests: a JSON object {userId: token}."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rest_framework_simplejwt.tokens import AccessToken

from shop.models import User


class Command(BaseCommand):
    help = "manage.py issue_tokens --users 1-1000 --out k6/results/tokens.json"

    def add_arguments(self, parser):
        parser.add_argument("--users", default="1-1000", help="an id range a-b")
        parser.add_argument("--out", required=True)

    def handle(self, *args, users, out, **opts):
        try:
            low, high = (int(part) for part in users.split("-", 1))
        except ValueError:
            raise CommandError("--users must look like 1-1000") from None
        tokens = {str(u.pk): str(AccessToken.for_user(u)) for u in User.objects.filter(pk__range=(low, high))}
        if not tokens:
            raise CommandError("no users in that range; run `make seed` first")
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tokens))
        self.stdout.write(f"wrote {len(tokens)} tokens to {path}")

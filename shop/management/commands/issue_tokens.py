"""Write JWT access tokens for a range of users, for load tests: a JSON object {userId: token}."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rest_framework_simplejwt.tokens import AccessToken

from common.cli import parse_ids
from shop.models import User


class Command(BaseCommand):
    help = "manage.py issue_tokens --users 1-1000 --out k6/results/tokens.json"

    def add_arguments(self, parser):
        parser.add_argument("--users", default="1-1000", help="user ids, e.g. 1-1000")
        parser.add_argument("--out", required=True)

    def handle(self, *args, users, out, **opts):
        user_ids = parse_ids(users, option="--users")
        tokens = {str(u.pk): str(AccessToken.for_user(u)) for u in User.objects.filter(pk__in=user_ids)}
        if not tokens:
            raise CommandError("no users in that range; run `make seed` first")
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tokens))
        self.stdout.write(f"wrote {len(tokens)} tokens to {path}")

"""Top every wallet of a token file up to one balance, through the public API.

    bench/topup_wallets.py --tokens k6/results/tokens.json [--balance 1000000] [--base-url http://127.0.0.1:8000]

Benchmarks that pay run one after another on the same data: without this, an earlier run's payments drain the
wallets and turn a later run's payments into cheaper 409 INSUFFICIENT_BALANCE answers (or top-ups), so two runs
would not do the same work. It goes through `GET /points/{id}` and `POST /points/{id}/charge` (the contract of
API.md), so it works against any commit of the project, the baseline of `scripts/bench_baseline.sh` included,
and every charge leaves its ledger row (the invariant audit stays green).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor


def call(base_url: str, method: str, path: str, token: str, body: dict | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if body is not None:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.load(response)
    return payload.get("data", payload)


def top_up(base_url: str, user_id: str, token: str, balance: int) -> int:
    """The amount charged (0 when the wallet already holds `balance` or more)."""
    current = call(base_url, "GET", f"/api/v1/points/{user_id}", token)["balance"]
    missing = balance - current
    if missing <= 0:
        return 0
    body = {"amount": missing, "description": "bench top-up"}
    call(base_url, "POST", f"/api/v1/points/{user_id}/charge", token, body)
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", required=True, help="a JSON object {userId: token} (manage.py issue_tokens)")
    parser.add_argument("--balance", type=int, default=1_000_000)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)

    with open(args.tokens) as fh:
        tokens: dict[str, str] = json.load(fh)
    with ThreadPoolExecutor(args.threads) as pool:
        jobs = [pool.submit(top_up, args.base_url, uid, tok, args.balance) for uid, tok in tokens.items()]
        try:
            charged = [job.result() for job in jobs]
        except urllib.error.HTTPError as exc:
            print(f"top-up failed: HTTP {exc.code} {exc.read()[:300]!r}", file=sys.stderr)
            return 1
    topped = sum(1 for amount in charged if amount)
    print(f"{topped} of {len(tokens)} wallets topped up to {args.balance:,} ({sum(charged):,} points charged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

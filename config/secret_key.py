"""The signing key outside production: random, made once per run folder, never a value from the repository.

Every process of a local stack (web, SSE, consumers, Celery, `manage.py`, a test's child processes)
must sign and verify with the same key, and those processes start at the same moment. The first one
writes a complete key to a private temporary file and links it into place (`link` fails when the
name exists, like `O_EXCL`): exactly one key wins, and no process can read a half-written file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_NAME = "secret-key"
MIN_LENGTH = 50  # Django's own check (security.W009) asks for at least 50 characters


def run_dir_secret_key(run_dir: Path) -> str:
    """The key kept in `run_dir/secret-key` (mode 0600), created on first use."""
    path = run_dir / FILE_NAME
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        _create(path)
    key = path.read_text().strip()
    if len(key) < MIN_LENGTH:
        raise RuntimeError(f"{path} holds no usable key (fewer than {MIN_LENGTH} characters): delete it")
    return key


def _create(path: Path) -> None:
    staging = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(staging, path)
        except FileExistsError:
            pass  # another process won: everyone uses its key
    finally:
        staging.unlink(missing_ok=True)

"""Production mode: `check --deploy` is clean, and nothing starts on a default secret.

Each case runs `manage.py` in a subprocess with a clean production environment (settings are read
once per process, so this process's test settings cannot be reused).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.support.processes import REPO, manage_command

# Variables that would leak the test run's configuration into the production process.
INHERITED = {"DJANGO_ENV", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DB_PASSWORD", "DB_TEST_NAME", "DJANGO_SETTINGS_MODULE"}


def production_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    env.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DB_PASSWORD=secrets.token_urlsafe(24),
        DJANGO_ALLOWED_HOSTS="shop.example.com",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(*args: str, **overrides: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        manage_command(*args),
        cwd=REPO,
        env=production_env(**overrides),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_in_production_mode():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_debug_would_be_reported():
    """The check really looks: asking for DEBUG in production fails it."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_DEBUG="1")
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "short-secret"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "local-development-secret-key-not-for-production-use-0123456789"}, "DJANGO_SECRET_KEY"),
        ({"DB_PASSWORD": None}, "DB_PASSWORD"),
        ({"DB_PASSWORD": ""}, "DB_PASSWORD"),
    ],
    ids=["no-secret-key", "empty-secret-key", "short-secret-key", "local-secret-key", "no-db-password", "empty-db-pw"],
)
def test_production_refuses_to_start_without_real_secrets(overrides, named):
    result = manage("shell", "-c", "print('started')", **overrides)
    assert result.returncode != 0, result.stdout
    assert "started" not in result.stdout
    assert named in result.stderr


def test_wsgi_application_refuses_to_load_without_secrets():
    code = "import config.wsgi"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=production_env(DJANGO_SECRET_KEY=None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_demo_seed_with_known_passwords_is_refused_in_production():
    result = manage("seed_demo", "--users", "1")
    assert result.returncode != 0
    assert "production" in result.stderr

"""Outside production the signing key is random, made once per run folder and shared by every process.

Each case starts real Django processes (settings are read once per process) with an empty run folder
and no DJANGO_SECRET_KEY. Production (DJANGO_SECRET_KEY required) is covered by test_deploy_check.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest
from django.conf import settings

from config.secret_key import run_dir_secret_key

PUBLISHED_KEY = "local-development-secret-key-not-for-production-use-0123456789"
PRINT_KEY = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.SECRET_KEY); print(settings.SIMPLE_JWT['SIGNING_KEY'])"
)


def local_env(run_dir, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DJANGO_ENV")}
    env.update(DJANGO_ENV="local", RUN_DIR=str(run_dir), DJANGO_SETTINGS_MODULE="config.settings")
    env.update(extra)
    return env


def start(run_dir, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PRINT_KEY],
        cwd=settings.BASE_DIR,
        env=local_env(run_dir, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def key_of(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    secret_key, signing_key = out.split()
    assert secret_key == signing_key
    return secret_key


def test_processes_started_together_on_an_empty_run_folder_share_one_random_key(tmp_path):
    run_dir = tmp_path / "run"  # does not exist yet: the first process creates it
    processes = [start(run_dir) for _ in range(6)]
    keys = {key_of(p) for p in processes}

    assert len(keys) == 1, keys
    (key,) = keys
    assert key != PUBLISHED_KEY and len(key) >= 50
    key_file = run_dir / "secret-key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in run_dir.iterdir()) == ["secret-key"]  # no staging file left behind
    # a later process (a restart) keeps the key: issued tokens stay valid
    assert key_of(start(run_dir)) == key


def test_each_run_folder_has_its_own_key(tmp_path):
    assert key_of(start(tmp_path / "one")) != key_of(start(tmp_path / "two"))


def test_an_explicit_key_wins_and_writes_no_file(tmp_path):
    explicit = "an-explicit-local-key-" + "x" * 40
    assert key_of(start(tmp_path, DJANGO_SECRET_KEY=explicit)) == explicit
    assert not (tmp_path / "secret-key").exists()


@pytest.mark.parametrize("django_env", ["local", "test", "production"])
def test_the_published_key_is_refused_everywhere(tmp_path, django_env):
    process = start(tmp_path, DJANGO_SECRET_KEY=PUBLISHED_KEY, DJANGO_ENV=django_env, DB_PASSWORD="x" * 20)
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "DJANGO_SECRET_KEY" in err


def test_creators_racing_on_one_folder_all_read_the_winners_key(tmp_path):
    """20 threads released at once by a barrier, 20 rounds: one key per folder, never a partial one."""
    for round_ in range(20):
        run_dir = tmp_path / f"round-{round_}"
        barrier = threading.Barrier(20)
        keys: list[str] = []

        def create(run_dir=run_dir, barrier=barrier, keys=keys) -> None:
            barrier.wait()
            keys.append(run_dir_secret_key(run_dir))

        threads = [threading.Thread(target=create) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(keys) == 20 and len(set(keys)) == 1, set(keys)
        assert sorted(p.name for p in run_dir.iterdir()) == ["secret-key"]


def test_a_damaged_key_file_stops_the_process_instead_of_signing_with_it(tmp_path):
    (tmp_path / "secret-key").write_text("short\n")
    with pytest.raises(RuntimeError, match="no usable key"):
        run_dir_secret_key(tmp_path)


def test_this_test_run_signs_with_its_run_folder_key():
    """The test process and its child processes (uvicorn, consumers) read the same file."""
    if os.environ.get("DJANGO_SECRET_KEY"):
        pytest.skip("DJANGO_SECRET_KEY is set for this run")
    key_file = settings.BASE_DIR / os.environ.get("RUN_DIR", ".run") / "secret-key"
    assert settings.SECRET_KEY == key_file.read_text().strip()

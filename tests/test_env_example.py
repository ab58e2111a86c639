"""`.env.example` lists every environment variable the settings read (one settings module)."""

import re
from pathlib import Path

from django.conf import settings

READS = re.compile(r'\b(?:env|env_int|env_float|env_bool|env_list|_require)\(\s*"([A-Z][A-Z0-9_]*)"')
LISTED = re.compile(r"^#\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def test_every_variable_the_settings_read_is_in_env_example():
    base = Path(settings.BASE_DIR)
    read = set(READS.findall((base / "config" / "settings.py").read_text()))
    listed = set(LISTED.findall((base / ".env.example").read_text()))
    assert len(read) > 40  # the pattern still finds the settings' reads
    assert read - listed == set()

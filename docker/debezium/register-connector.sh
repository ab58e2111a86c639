#!/usr/bin/env bash
# Registers (or updates) the Debezium outbox connector on Kafka Connect. Idempotent: PUT
# /connectors/<name>/config creates the connector or replaces its config, so it is safe to run on
# every `docker compose up` (the connect-init service does exactly that).
#
#   DEBEZIUM_PASSWORD  required: replaces the "${DEBEZIUM_PASSWORD}" placeholder in the config
#   CONNECT_URL        default http://connect:8083
#   CONNECTOR_NAME     default shop-outbox
#   CONNECTOR_CONFIG   default: outbox-connector.json beside this script
#   CDC_MODE           debezium (default) registers the connector; relay removes it, because then
#                      `manage.py outbox_relay` publishes the outbox (exactly one of the two may run)
#   CONNECT_WAIT_SECONDS  how long to wait for Connect's REST API (default 300)
set -euo pipefail

CONNECT_URL=${CONNECT_URL:-http://connect:8083}
CONNECTOR_NAME=${CONNECTOR_NAME:-shop-outbox}
CONNECTOR_CONFIG=${CONNECTOR_CONFIG:-$(dirname "$0")/outbox-connector.json}
CDC_MODE=${CDC_MODE:-debezium}
CONNECT_WAIT_SECONDS=${CONNECT_WAIT_SECONDS:-300}
# shellcheck disable=SC2016  # the literal text of the placeholder, not an expansion
PLACEHOLDER='${DEBEZIUM_PASSWORD}'

log() { printf 'register-connector: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

connector_url="$CONNECT_URL/connectors/$CONNECTOR_NAME"

log "waiting for Kafka Connect at $CONNECT_URL"
deadline=$((SECONDS + CONNECT_WAIT_SECONDS))
until curl -fsS -o /dev/null "$CONNECT_URL/connectors"; do
    ((SECONDS < deadline)) || die "Kafka Connect did not answer within ${CONNECT_WAIT_SECONDS}s"
    sleep 3
done

case "$CDC_MODE" in
    relay)
        code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$connector_url")
        case "$code" in
            204) log "CDC_MODE=relay: removed connector $CONNECTOR_NAME" ;;
            404) log "CDC_MODE=relay: connector $CONNECTOR_NAME is not registered; nothing to do" ;;
            *) die "DELETE $connector_url answered HTTP $code" ;;
        esac
        exit 0
        ;;
    debezium) ;;
    *) die "CDC_MODE must be 'debezium' or 'relay', not '$CDC_MODE'" ;;
esac

[ -r "$CONNECTOR_CONFIG" ] || die "cannot read $CONNECTOR_CONFIG"
[ -n "${DEBEZIUM_PASSWORD:-}" ] || die "DEBEZIUM_PASSWORD is not set"

# Substitute the password as a JSON string body (escape \ and "). Only the literal placeholder is
# replaced: the config also holds ${routedByValue}, which Debezium itself must see.
json_pw=${DEBEZIUM_PASSWORD//\\/\\\\}
json_pw=${json_pw//\"/\\\"}
config=$(<"$CONNECTOR_CONFIG")
config=${config//"$PLACEHOLDER"/"$json_pw"}

body=$(mktemp)
response=$(mktemp)
trap 'rm -f "$body" "$response"' EXIT
chmod 600 "$body"
printf '%s' "$config" > "$body"

# Right after start-up Connect may answer 409 (rebalance in progress): retry for a while.
for attempt in $(seq 1 20); do
    code=$(curl -sS -o "$response" -w '%{http_code}' -X PUT \
        -H 'Content-Type: application/json' -H 'Accept: application/json' \
        --data-binary "@$body" "$connector_url/config") || code=000
    case "$code" in
        200) log "updated connector $CONNECTOR_NAME"; break ;;
        201) log "created connector $CONNECTOR_NAME"; break ;;
        409 | 000 | 5??) log "attempt $attempt: HTTP $code, retrying"; sleep 3 ;;
        *) cat "$response" >&2; echo >&2; die "PUT $connector_url/config answered HTTP $code" ;;
    esac
done
[[ "$code" == 200 || "$code" == 201 ]] || { cat "$response" >&2; echo >&2; die "giving up"; }

# Report the outcome: wait until the connector and its task run, fail if either failed.
for _ in $(seq 1 40); do
    status=$(curl -fsS "$connector_url/status" 2>/dev/null || true)
    if [[ "$status" == *'"state":"FAILED"'* ]]; then
        printf '%s\n' "$status" >&2
        die "connector $CONNECTOR_NAME failed"
    fi
    if [[ "$status" == *'"tasks":[{'*'"state":"RUNNING"'* ]]; then
        log "connector $CONNECTOR_NAME is RUNNING"
        exit 0
    fi
    sleep 3
done
printf '%s\n' "${status:-}" >&2
die "connector $CONNECTOR_NAME did not reach RUNNING"

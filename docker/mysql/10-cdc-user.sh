#!/bin/bash
# Mounted into /docker-entrypoint-initdb.d/ of the mysql service: runs once, when the data volume
# is initialised. Feeds docker/mysql/init.sql to the server with @debezium_password taken from
# DEBEZIUM_PASSWORD, escaped as an SQL string literal.
#
# The official entrypoint sources *.sh files that are not executable (then docker_process_sql is
# available) and executes the others; this script works either way. It must not `exit` (it may be
# sourced); `set -eo pipefail` is what the entrypoint itself runs with, so a failure aborts the
# initialisation in both cases instead of leaving a database without the CDC user.
set -eo pipefail

cdc_init_sql=/etc/mysql/cdc/init.sql

if [ -z "${DEBEZIUM_PASSWORD:-}" ]; then
    echo >&2 "10-cdc-user.sh: DEBEZIUM_PASSWORD is not set; cannot create the Debezium CDC user"
    false
else
    cdc_pw=${DEBEZIUM_PASSWORD//\\/\\\\}
    cdc_pw=${cdc_pw//\'/\'\'}
    {
        printf "SET @debezium_password = '%s';\n" "$cdc_pw"
        cat "$cdc_init_sql"
    } | if declare -F docker_process_sql > /dev/null; then
        docker_process_sql
    else
        MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --protocol=socket -uroot \
            --socket="${SOCKET:-/var/run/mysqld/mysqld.sock}"
    fi
    unset cdc_pw
    echo "10-cdc-user.sh: created CDC user 'debezium'"
fi

-- CDC user for Debezium (docker/debezium/outbox-connector.json).
--
-- Run once, on the first start of an empty data volume, by docker/mysql/10-cdc-user.sh, which
-- sets @debezium_password from the DEBEZIUM_PASSWORD environment variable before this file
-- (SQL cannot read the environment itself). This file is mounted outside
-- /docker-entrypoint-initdb.d so the entrypoint never runs it without that variable.
--
-- The application user `shop` (all privileges on `shop`) is created by the image itself from
-- MYSQL_USER / MYSQL_PASSWORD.

-- Fails loudly (PREPARE of NULL) if @debezium_password was not set.
SET @create_cdc_user = CONCAT(
    'CREATE USER IF NOT EXISTS ''debezium''@''%'' IDENTIFIED BY ', QUOTE(@debezium_password)
);
PREPARE create_cdc_user FROM @create_cdc_user;
EXECUTE create_cdc_user;
DEALLOCATE PREPARE create_cdc_user;
SET @create_cdc_user = NULL;
SET @debezium_password = NULL;

-- What the Debezium MySQL connector needs: read the binlog (REPLICATION SLAVE / CLIENT), read the
-- schema and (for snapshots) rows (SELECT, SHOW DATABASES), take the snapshot lock (RELOAD).
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT
    ON *.* TO 'debezium'@'%';

FLUSH PRIVILEGES;

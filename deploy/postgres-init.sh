#!/bin/sh
# First start of the postgres container: one role and database for the catalog, one for Prefect.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE preserve LOGIN PASSWORD '${PRESERVE_DB_PASSWORD}';
CREATE DATABASE preserve OWNER preserve;
CREATE ROLE prefect LOGIN PASSWORD '${PREFECT_DB_PASSWORD}';
CREATE DATABASE prefect OWNER prefect;
SQL

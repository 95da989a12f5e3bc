#!/bin/sh
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d), as its superuser.
# Two roles, neither a superuser:
#   hexavox_owner  owns the database and its schema; only migrations connect as it (HEXAVOX_MIGRATION_DATABASE_URL)
#   hexavox_app    workers and the API (HEXAVOX_DATABASE_URL); `hexavox db upgrade` grants it row rights (DML) only
# Passwords come from deploy/postgres.env; the superuser's password is never given to the application.
set -eu
: "${HEXAVOX_OWNER_PASSWORD:?set HEXAVOX_OWNER_PASSWORD in postgres.env}"
: "${HEXAVOX_APP_PASSWORD:?set HEXAVOX_APP_PASSWORD in postgres.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner_pw="$HEXAVOX_OWNER_PASSWORD" -v app_pw="$HEXAVOX_APP_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE hexavox_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_pw';
CREATE ROLE hexavox_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_pw';
ALTER DATABASE :"db" OWNER TO hexavox_owner;
ALTER SCHEMA public OWNER TO hexavox_owner;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO hexavox_app;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL

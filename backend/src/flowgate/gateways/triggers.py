"""Database triggers on ``gateways`` that keep the health history and the per-organisation
counts exactly right, whoever writes the row (presence, the sweep, a deactivation, a cascade
from a deleted organisation, an operator's SQL):

- a change of ``health`` appends a row to ``gateway_health_history`` (from, to, the row's
  ``health_reason`` and ``health_changed_at``); an inserted gateway appends one from nothing;
- an insert and a rename copy the name into ``gateway_names`` (what name search reads; a
  delete cascades);
- an insert, a delete and a change of status, health or organisation append +1/-1 rows to
  ``gateway_count_deltas`` (append-only: concurrent writers never wait on each other), which the
  health sweep folds into ``gateway_counts``.

Migration 0009 creates them. NOTE: on SQLite a later migration that rebuilds ``gateways`` with
``batch_alter_table`` drops its triggers; such a migration must call :func:`create` again
(``tests/test_migrations.py`` checks they exist at head on both databases).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

NAMES = (
    "trg_gateways_health_insert",
    "trg_gateways_health_delete",
    "trg_gateways_health_update",
    "trg_gateways_health_history",
    "trg_gateways_name_insert",
    "trg_gateways_name_update",
)

#: When a row carries no ``health_changed_at`` (written around the writers): the database's now.
_SQLITE_AT = "COALESCE(NEW.health_changed_at, strftime('%Y-%m-%d %H:%M:%f', 'now'))"
_PG_AT = "COALESCE(NEW.health_changed_at, now())"

_COUNT = "INSERT INTO gateway_count_deltas (org_id, status, health, n) VALUES "
_HISTORY = (
    "INSERT INTO gateway_health_history (gateway_id, org_id, from_health, to_health, reason, at) "
    "VALUES "
)

_NAME_INSERT = (
    "INSERT INTO gateway_names (gateway_id, org_id, name) VALUES (NEW.id, NEW.org_id, NEW.name)"
)
_NAME_UPDATE = (
    "UPDATE gateway_names SET name = NEW.name, org_id = NEW.org_id WHERE gateway_id = NEW.id"
)

SQLITE = [
    f"""CREATE TRIGGER trg_gateways_health_insert AFTER INSERT ON gateways
BEGIN
  {_COUNT}(NEW.org_id, NEW.status, NEW.health, 1);
  {_HISTORY}(NEW.id, NEW.org_id, NULL, NEW.health, NEW.health_reason, {_SQLITE_AT});
END""",
    f"""CREATE TRIGGER trg_gateways_name_insert AFTER INSERT ON gateways
BEGIN
  {_NAME_INSERT};
END""",
    f"""CREATE TRIGGER trg_gateways_name_update AFTER UPDATE OF name, org_id ON gateways
WHEN OLD.name IS NOT NEW.name OR OLD.org_id IS NOT NEW.org_id
BEGIN
  {_NAME_UPDATE};
END""",
    f"""CREATE TRIGGER trg_gateways_health_delete AFTER DELETE ON gateways
BEGIN
  {_COUNT}(OLD.org_id, OLD.status, OLD.health, -1);
END""",
    f"""CREATE TRIGGER trg_gateways_health_update AFTER UPDATE OF status, health, org_id
ON gateways
WHEN OLD.status IS NOT NEW.status OR OLD.health IS NOT NEW.health
  OR OLD.org_id IS NOT NEW.org_id
BEGIN
  {_COUNT}(OLD.org_id, OLD.status, OLD.health, -1), (NEW.org_id, NEW.status, NEW.health, 1);
END""",
    f"""CREATE TRIGGER trg_gateways_health_history AFTER UPDATE OF health ON gateways
WHEN OLD.health IS NOT NEW.health
BEGIN
  {_HISTORY}(NEW.id, NEW.org_id, OLD.health, NEW.health, NEW.health_reason,
    {_SQLITE_AT});
END""",
]

POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION flowgate_gateways_health_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  {_COUNT}(NEW.org_id, NEW.status, NEW.health, 1);
  {_HISTORY}(NEW.id, NEW.org_id, NULL, NEW.health, NEW.health_reason, {_PG_AT});
  RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE FUNCTION flowgate_gateways_health_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  {_COUNT}(OLD.org_id, OLD.status, OLD.health, -1);
  RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE FUNCTION flowgate_gateways_health_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  {_COUNT}(OLD.org_id, OLD.status, OLD.health, -1), (NEW.org_id, NEW.status, NEW.health, 1);
  RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE FUNCTION flowgate_gateways_health_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  {_HISTORY}(NEW.id, NEW.org_id, OLD.health, NEW.health, NEW.health_reason,
    {_PG_AT});
  RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE FUNCTION flowgate_gateways_name_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  {_NAME_INSERT};
  RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE FUNCTION flowgate_gateways_name_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  {_NAME_UPDATE};
  RETURN NULL;
END $$""",
    """CREATE TRIGGER trg_gateways_health_insert AFTER INSERT ON gateways
FOR EACH ROW EXECUTE FUNCTION flowgate_gateways_health_insert()""",
    """CREATE TRIGGER trg_gateways_name_insert AFTER INSERT ON gateways
FOR EACH ROW EXECUTE FUNCTION flowgate_gateways_name_insert()""",
    """CREATE TRIGGER trg_gateways_name_update AFTER UPDATE OF name, org_id ON gateways
FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.org_id IS DISTINCT FROM NEW.org_id)
EXECUTE FUNCTION flowgate_gateways_name_update()""",
    """CREATE TRIGGER trg_gateways_health_delete AFTER DELETE ON gateways
FOR EACH ROW EXECUTE FUNCTION flowgate_gateways_health_delete()""",
    """CREATE TRIGGER trg_gateways_health_update AFTER UPDATE OF status, health, org_id
ON gateways FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.health IS DISTINCT FROM NEW.health
  OR OLD.org_id IS DISTINCT FROM NEW.org_id)
EXECUTE FUNCTION flowgate_gateways_health_update()""",
    """CREATE TRIGGER trg_gateways_health_history AFTER UPDATE OF health ON gateways
FOR EACH ROW WHEN (OLD.health IS DISTINCT FROM NEW.health)
EXECUTE FUNCTION flowgate_gateways_health_history()""",
]


def create(conn: Connection) -> None:
    """Create the triggers (replacing any of the same name)."""
    drop(conn)
    for statement in POSTGRESQL if conn.dialect.name == "postgresql" else SQLITE:
        conn.execute(text(statement))


def drop(conn: Connection) -> None:
    postgres = conn.dialect.name == "postgresql"
    for name in NAMES:
        on = " ON gateways" if postgres else ""
        conn.execute(text(f"DROP TRIGGER IF EXISTS {name}{on}"))
    if postgres:
        for name in NAMES:
            fn = name.replace("trg_", "flowgate_")
            conn.execute(text(f"DROP FUNCTION IF EXISTS {fn}()"))


def existing(conn: Connection) -> set[str]:
    """Names of the triggers above that exist."""
    if conn.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'gateways'::regclass"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'gateways'"
    return {str(row[0]) for row in conn.execute(text(query))} & set(NAMES)

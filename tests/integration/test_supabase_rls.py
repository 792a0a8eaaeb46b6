"""The Supabase migration on a real PostgreSQL 15, with a stand-in for Supabase's auth.uid():
row-level security keeps alice and bob apart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from aitrader.storage.supabase import schema_sql

pytestmark = pytest.mark.postgres

ALICE = str(uuid.UUID(int=1))
BOB = str(uuid.UUID(int=2))
AUTH_STANDIN = """
drop schema if exists public cascade;
create schema public;
grant usage on schema public to public;
create schema if not exists auth;
do $$ begin
    if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin; end if;
    if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin; end if;
end $$;
grant usage on schema auth to authenticated, anon;
create or replace function auth.uid() returns uuid language sql stable as
    $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
"""


@pytest.fixture
def db(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(AUTH_STANDIN)
        connection.execute(schema_sql())
        connection.execute(schema_sql())  # applying it twice changes nothing
        for user in (ALICE, BOB):
            connection.execute(
                "insert into traders (id, user_id, name, symbols, timeframes, signal_code) "
                "values (%s, %s, 'rsi dip', '[\"BTCUSDT\"]', '[\"1m\"]', 'rsi(close, 14) < 30')",
                (user[-8:], user),
            )
            connection.execute(
                "insert into positions (id, user_id, symbol, side, entry_price, size) "
                "values (%s, %s, 'BTCUSDT', 'LONG', 64000.1, 0.001)",
                ("p" + user[-8:], user),
            )
        yield connection
        connection.execute("reset role")
        connection.execute("drop schema public cascade; create schema public; drop schema auth cascade")


def act_as(connection: psycopg.Connection, user: str | None) -> None:
    connection.execute("reset role")
    connection.execute("select set_config('request.jwt.claim.sub', %s, false)", (user or "",))
    connection.execute("set role " + ("authenticated" if user else "anon"))


def test_a_user_sees_only_their_own_rows(db: psycopg.Connection) -> None:
    act_as(db, ALICE)
    assert db.execute("select user_id from traders").fetchall() == [(ALICE,)]
    assert db.execute("select user_id from positions").fetchall() == [(ALICE,)]
    act_as(db, BOB)
    assert db.execute("select user_id from traders").fetchall() == [(BOB,)]


def test_a_user_cannot_change_or_delete_anothers_rows(db: psycopg.Connection) -> None:
    act_as(db, ALICE)
    updated = db.execute("update positions set pnl = 999 where user_id = %s", (BOB,))
    deleted = db.execute("delete from traders where user_id = %s", (BOB,))
    assert (updated.rowcount, deleted.rowcount) == (0, 0)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        db.execute("update positions set user_id = %s where user_id = %s", (BOB, ALICE))
    db.execute("reset role")
    assert db.execute("select pnl from positions where user_id = %s", (BOB,)).fetchone() == (0,)
    assert db.execute("select count(*) from traders").fetchone() == (2,)


def test_inserting_a_row_for_another_user_is_refused(db: psycopg.Connection) -> None:
    act_as(db, ALICE)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        db.execute(
            "insert into traders (id, user_id, name, symbols, timeframes, signal_code) "
            "values ('x1', %s, 'sneaky', '[]', '[]', 'x')",
            (BOB,),
        )
    db.execute(
        "insert into traders (id, user_id, name, symbols, timeframes, signal_code) "
        "values ('x2', %s, 'mine', '[]', '[]', 'x')",
        (ALICE,),
    )
    assert db.execute("select count(*) from traders").fetchone() == (2,)


def test_set_balances_replaces_only_the_callers_balances(db: psycopg.Connection) -> None:
    db.execute("insert into balances (user_id, asset, free, locked) values (%s, 'USDT', 5, 0)", (BOB,))
    act_as(db, ALICE)
    db.execute(
        "select set_balances(%s, %s::jsonb)", (ALICE, '[{"asset": "USDT", "free": "9000.5", "locked": "10"}]')
    )
    db.execute("select set_balances(%s, '[]'::jsonb)", (BOB,))  # RLS: deletes nothing of bob's
    assert db.execute("select asset, free from balances").fetchall() == [("USDT", 9000.5)]
    db.execute("reset role")
    assert db.execute("select count(*) from balances where user_id = %s", (BOB,)).fetchone() == (1,)


def test_anonymous_callers_see_nothing(db: psycopg.Connection) -> None:
    act_as(db, None)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("select * from traders")

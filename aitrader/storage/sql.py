"""The Storage protocol on SQLModel: SQLite (embedded default) and PostgreSQL (Supabase's too)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, delete, select

from aitrader.models import (
    Balance,
    Heartbeat,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Signal,
    SignalStatus,
    Trader,
    TraderStatus,
    utcnow,
)
from aitrader.storage.base import NotFound
from aitrader.storage.engine import WalCheckpointer, create_storage_engine
from aitrader.storage.migrations import migrate
from aitrader.storage.transactions import SQLTransactions, Write
from aitrader.storage.validate import validated, validated_values

T = TypeVar("T", bound=SQLModel)
__all__ = ["SQLStorage", "Write"]


@cache
def _column_of(model: type[SQLModel]) -> dict[str, str]:
    """Field name -> column name (they differ where a field is renamed, e.g. ``Signal.meta``)."""
    return {attr.key: attr.columns[0].name for attr in sa_inspect(model).column_attrs}


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


class SQLStorage(SQLTransactions):
    """Storage over any SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://...``).

    Each call is one transaction; `apply_many` runs several calls as one. Hot-path writes (inserts,
    closes, balances) are Core statements: the ORM's unit of work costs more than the write itself.
    """

    def __init__(self, url: str, *, read_only: bool = False, migrate_schema: bool = True,
                 background_checkpoints: bool = False) -> None:
        self.url = url
        self.read_only = read_only
        self.engine = create_storage_engine(url, read_only=read_only, background_checkpoints=background_checkpoints)
        #: With ``background_checkpoints`` (SQLite only) its owner calls `checkpoint_if_due` off the write path.
        self.checkpointer = (WalCheckpointer(self.engine)
                             if background_checkpoints and not read_only and self.engine.dialect.name == "sqlite"
                             else None)
        self._init_transactions()
        if migrate_schema and not read_only:
            self.migrate()

    def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""
        return self._guard(lambda: migrate(self.engine))

    # -- plumbing (transactions: aitrader/storage/transactions.py) ------------------------

    def _insert(self, row: T) -> T:
        model = type(row)
        checked = validated_values(model, row.model_dump())  # as model_validate does, without a table row
        columns = _column_of(model)
        values = {columns[name]: value for name, value in checked.items()}
        row = model.model_construct(**checked)

        def action() -> T:
            with self._connection() as connection:
                self._run(connection, _insert_statement(model), values)
                return row

        return self._guard(action)

    def _get(self, model: type[T], key: Any) -> T:
        def action() -> T:
            with self._session() as session:
                row = session.get(model, key)
                if row is None:
                    raise NotFound(f"no {model.__name__.lower()} with id {key!r}")
                return row

        return self._guard(action)

    def _update(self, model: type[T], key: Any, changes: dict[str, Any]) -> T:
        unknown = set(changes) - set(model.model_fields)
        if unknown:
            raise ValueError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")

        def action() -> T:
            with self._session() as session:
                row = session.get(model, key)
                if row is None:
                    raise NotFound(f"no {model.__name__.lower()} with id {key!r}")
                merged = {**row.model_dump(), **changes}
                if "updated_at" in model.model_fields:
                    merged["updated_at"] = utcnow()
                checked = validated(model, merged)
                columns = _column_of(model)
                table = _table(model)
                [key_column] = table.primary_key.columns
                names = {*changes, "updated_at"} & set(model.model_fields)
                session.connection().execute(  # Core: the ORM's unit of work costs more than the write
                    update(table).where(key_column == key).values({columns[n]: getattr(checked, n) for n in names}))
                session.expunge(row)  # the identity map must not hand out the stale copy later in a transaction
                self._commit(session)
                return checked

        return self._guard(action)

    def _select(self, statement: Any) -> list[Any]:
        def action() -> list[Any]:
            with self._session() as session:
                return list(session.exec(statement).all())

        return self._guard(action)

    # -- traders --------------------------------------------------------------------------

    def list_traders(self, user_id: str, *, active_only: bool = False) -> list[Trader]:
        query = select(Trader).where(Trader.user_id == user_id)
        if active_only:
            query = query.where(Trader.status == TraderStatus.ACTIVE)
        return self._select(query.order_by(col(Trader.created_at)))

    def get_trader(self, trader_id: str) -> Trader:
        return self._get(Trader, trader_id)

    def create_trader(self, trader: Trader) -> Trader:
        return self._insert(trader)

    def update_trader(self, trader_id: str, **changes: Any) -> Trader:
        return self._update(Trader, trader_id, changes)

    def delete_trader(self, trader_id: str) -> None:
        def action() -> None:
            with self._session() as session:
                row = session.get(Trader, trader_id)
                if row is None:
                    raise NotFound(f"no trader with id {trader_id!r}")
                session.delete(row)
                self._commit(session)

        self._guard(action)

    # -- signals --------------------------------------------------------------------------

    def create_signal(self, signal: Signal) -> tuple[Signal, bool]:
        signal = Signal.model_validate(signal.model_dump())

        def action() -> tuple[Signal, bool]:
            with self._session() as session:
                existing = session.get(Signal, signal.id)
                if existing is not None:
                    return existing, False
                session.add(signal)
                try:
                    self._commit(session)
                except IntegrityError:
                    if self._in_transaction():
                        raise  # a rollback here would undo the whole transaction
                    session.rollback()
                    existing = session.get(Signal, signal.id)
                    if existing is None:
                        raise
                    return existing, False
                return signal, True

        return self._guard(action)

    def get_signal(self, signal_id: str) -> Signal:
        return self._get(Signal, signal_id)

    def update_signal(self, signal_id: str, **changes: Any) -> Signal:
        return self._update(Signal, signal_id, changes)

    def list_signals(
        self,
        *,
        user_id: str | None = None,
        trader_id: str | None = None,
        symbol: str | None = None,
        status: SignalStatus | None = None,
        limit: int = 100,
    ) -> list[Signal]:
        query = select(Signal)
        if user_id is not None:
            query = query.where(Signal.user_id == user_id)
        if trader_id is not None:
            query = query.where(Signal.trader_id == trader_id)
        if symbol is not None:
            query = query.where(Signal.symbol == symbol)
        if status is not None:
            query = query.where(Signal.status == status)
        query = query.order_by(col(Signal.created_at).desc(), col(Signal.candle_time).desc())
        return self._select(query.limit(max(1, min(limit, 10_000))))

    # -- positions ------------------------------------------------------------------------

    def create_position(self, position: Position) -> Position:
        return self._insert(position)

    def get_position(self, position_id: str) -> Position:
        return self._get(Position, position_id)

    def update_position(self, position_id: str, **changes: Any) -> Position:
        if changes and set(changes) <= _MARK_FIELDS:
            return self._mark_position(position_id, changes)
        return self._update(Position, position_id, changes)

    def _mark_position(self, position_id: str, marks: dict[str, Any]) -> Position:
        """A P&L mark: amounts no validator of `Position` relates to others, so no load-validate-merge."""
        values: dict[str, Any] = {name: None if value is None else _amount(value) for name, value in marks.items()}
        for required in ("pnl", "pnl_pct"):
            if required in values and values[required] is None:
                raise ValueError(f"Position.{required} cannot be empty")
        values["updated_at"] = utcnow()
        table = _table(Position)

        def action() -> Position:
            with self._session() as session:
                result = session.connection().execute(update(table).where(table.c.id == position_id).values(values))
                if result.rowcount == 0:
                    raise NotFound(f"no position with id {position_id!r}")
                row = session.get(Position, position_id, populate_existing=True)
                assert row is not None
                self._commit(session)
                return row

        return self._guard(action)

    def mark_positions(self, marks: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Apply queued P&L marks ((position id, mark fields)) in one transaction, the last mark of a
        position winning; a mark of a position that is closed or unknown is skipped, never applied
        over the close. One prepared UPDATE per field set, executed for every position at once."""
        latest: dict[str, dict[str, Any]] = {}
        for position_id, mark in marks:
            unknown = set(mark) - _MARK_FIELDS
            if unknown:
                raise ValueError(f"a P&L mark cannot change {', '.join(sorted(unknown))}")
            latest.setdefault(position_id, {}).update(mark)
        now = utcnow()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for position_id, mark in latest.items():
            values = {name: None if value is None else _amount(value) for name, value in mark.items()}
            if any(values.get(required, 0) is None for required in ("pnl", "pnl_pct")):
                raise ValueError(f"a P&L mark of position {position_id} leaves pnl or pnl_pct empty")
            groups.setdefault(tuple(sorted(values)), []).append({**values, "updated_at": now, "m_id": position_id,
                                                                "m_open": PositionStatus.OPEN})
        if not groups:
            return

        def action() -> None:
            with self._connection() as connection:
                for columns, rows in groups.items():
                    self._run_many(connection, _mark_statement(columns), rows)

        self._guard(action)

    def list_positions(
        self, user_id: str, *, status: PositionStatus | None = None, limit: int = 500
    ) -> list[Position]:
        query = select(Position).where(Position.user_id == user_id)
        if status is not None:
            query = query.where(Position.status == status)
        query = query.order_by(col(Position.created_at).desc())
        return self._select(query.limit(max(1, min(limit, 10_000))))

    def close_position(
        self,
        position_id: str,
        *,
        exit_price: Decimal,
        pnl: Decimal,
        pnl_pct: Decimal,
        reason: str,
        status: PositionStatus = PositionStatus.CLOSED,
        exit_order_id: str | None = None,
        fees: Decimal | None = None,
    ) -> tuple[Position, bool]:
        if status is PositionStatus.OPEN:
            raise ValueError("close_position needs a closed status (closed or stopped)")
        now = utcnow()
        values: dict[str, Any] = {
            "status": status,
            "exit_price": exit_price,
            "current_price": exit_price,
            "pnl": pnl,
            "pnl_pct": pnl_pct,
            "close_reason": reason,
            "exit_order_id": exit_order_id,
            "closed_at": now,
            "updated_at": now,
        }
        if fees is not None:
            values["fees"] = fees

        def action() -> tuple[Position, bool]:
            with self._connection() as connection:  # one transaction: the read sees this close, not a later one
                # The status condition makes the close exactly-once across racing callers; RETURNING
                # reads the closed row back in the same statement (no ORM load).
                _, rows = self._run(connection, _close_statement(tuple(values)),
                                    {**values, "c_id": position_id, "c_open": PositionStatus.OPEN})
                closed = rows[0] if rows else None
                stored = closed or connection.execute(_SELECT_POSITION, {"p_id": position_id}).mappings().first()
                if stored is None:
                    raise NotFound(f"no position with id {position_id!r}")
                # The stored row, validated when it was written (as a load through the ORM is not).
                return Position.model_construct(**stored), closed is not None

        return self._guard(action)

    # -- orders ---------------------------------------------------------------------------

    def create_order(self, order: Order) -> Order:
        return self._insert(order)

    def get_order(self, order_id: str) -> Order:
        return self._get(Order, order_id)

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        rows = self._select(select(Order).where(Order.client_order_id == client_order_id))
        return rows[0] if rows else None

    def update_order(self, order_id: str, **changes: Any) -> Order:
        return self._update(Order, order_id, changes)

    def list_orders(
        self, user_id: str, *, status: Sequence[OrderStatus] | None = None, limit: int = 100
    ) -> list[Order]:
        query = select(Order).where(Order.user_id == user_id)
        if status:
            query = query.where(col(Order.status).in_(list(status)))
        query = query.order_by(col(Order.created_at).desc())
        return self._select(query.limit(max(1, min(limit, 10_000))))

    # -- balances -------------------------------------------------------------------------

    def get_balances(self, user_id: str) -> list[Balance]:
        return self._select(select(Balance).where(Balance.user_id == user_id).order_by(col(Balance.asset)))

    def set_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        """Replace the user's balances; only rows that differ from the stored ones are written."""
        self._write_balances(user_id, balances, replace=True)

    def update_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        """Store these assets' balances (insert or update); the user's other assets stay as they are."""
        self._write_balances(user_id, balances, replace=False)

    def _write_balances(self, user_id: str, balances: Sequence[Balance], *, replace: bool) -> None:
        now = utcnow()
        wanted = {b.asset: {"b_user": user_id, "b_asset": b.asset, "free": _amount(b.free),
                            "locked": _amount(b.locked), "updated_at": now} for b in balances}

        def action() -> None:
            with self._connection() as connection:
                changed = list(wanted.values())
                if replace:
                    stored = {asset: (free, locked) for asset, free, locked in
                              connection.execute(_SELECT_BALANCES, {"b_user": user_id})}
                    gone = sorted(set(stored) - set(wanted))
                    if gone:
                        connection.execute(_DELETE_BALANCES, {"b_user": user_id, "b_assets": gone})
                    changed = [row for asset, row in wanted.items() if stored.get(asset) != (row["free"], row["locked"])]
                for row in changed:  # update, else insert: the Store is the only writer, so no race
                    if self._run(connection, _UPDATE_BALANCE, row)[0] == 0:
                        self._run(connection, _INSERT_BALANCE, row)

        self._guard(action)

    # -- heartbeat ------------------------------------------------------------------------

    def heartbeat(self, component: str, user_id: str = "", info: dict[str, Any] | None = None) -> None:
        row = Heartbeat(component=component, user_id=user_id, at=utcnow(), info=info or {})

        def action() -> None:
            with self._session() as session:
                session.merge(row)
                self._commit(session)

        self._guard(action)

    def get_heartbeat(self, component: str) -> Heartbeat | None:
        try:
            return self._get(Heartbeat, component)
        except NotFound:
            return None

    def checkpoint_if_due(self) -> bool:
        """Run a due background WAL checkpoint (see `WalCheckpointer`); True if one ran."""
        return self.checkpointer.run_if_due() if self.checkpointer is not None else False

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.dispose()


#: `Position` fields a P&L mark changes (see `update_position`).
_MARK_FIELDS = frozenset({"current_price", "best_price", "pnl", "pnl_pct"})
_BALANCES = _table(Balance)
_SELECT_BALANCES = select(_BALANCES.c.asset, _BALANCES.c.free, _BALANCES.c.locked).where(
    _BALANCES.c.user_id == bindparam("b_user"))
_DELETE_BALANCES = delete(_BALANCES).where(
    _BALANCES.c.user_id == bindparam("b_user"), _BALANCES.c.asset.in_(bindparam("b_assets", expanding=True)))
_UPDATE_BALANCE = update(_BALANCES).where(
    _BALANCES.c.user_id == bindparam("b_user"), _BALANCES.c.asset == bindparam("b_asset")).values(
    free=bindparam("free"), locked=bindparam("locked"), updated_at=bindparam("updated_at"))
_INSERT_BALANCE = insert(_BALANCES).values(
    user_id=bindparam("b_user"), asset=bindparam("b_asset"), free=bindparam("free"), locked=bindparam("locked"),
    updated_at=bindparam("updated_at"))


@cache
def _insert_statement(model: type[SQLModel]) -> Any:
    """``INSERT INTO <model's table>``, built once (a statement object keeps its compiled-cache key)."""
    return insert(_table(model))


@cache
def _mark_statement(columns: tuple[str, ...]) -> Any:
    """``UPDATE positions SET <columns>, updated_at WHERE id = :m_id AND status = :m_open`` (built once per set)."""
    table = _table(Position)
    return (update(table).where(table.c.id == bindparam("m_id"), table.c.status == bindparam("m_open"))
            .values({name: bindparam(name) for name in (*columns, "updated_at")}))


@cache
def _close_statement(columns: tuple[str, ...]) -> Any:
    """``UPDATE positions SET <columns> WHERE id = :c_id AND status = :c_open`` (built once per column set)."""
    table = _table(Position)
    return (update(table).where(table.c.id == bindparam("c_id"), table.c.status == bindparam("c_open"))
            .values({name: bindparam(name) for name in columns}).returning(*table.c))


_SELECT_POSITION = core_select(*_table(Position).c).where(_table(Position).c.id == bindparam("p_id"))


def _amount(value: Any) -> Decimal:
    """A balance amount as an exact, finite Decimal (a bad one is refused before anything is written)."""
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    if not amount.is_finite():
        raise ValueError(f"a balance must be a finite amount, got {amount}")
    return amount

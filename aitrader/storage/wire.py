"""Storage calls and their results as msgpack bytes, for the hot path between the Executor and the Store.

Ray pickles a call's arguments with cloudpickle, which costs ~100 us per table model (and as much
again to unpickle it, with its SQLAlchemy instance state); a paper close sends an order and two
balances and gets a position back. As msgpack the whole message costs a few tens of microseconds
each way. Decimals, datetimes, the models' enums and the table models `Order`, `Position` and
`Balance` travel as msgpack extensions, everything else as plain msgpack. A decoded model is built
without validation (`model_construct`): storage validates what it writes, and what it returns was
validated when it was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec

import aitrader.models.enums as _enums

Write = tuple[str, tuple[Any, ...], dict[str, Any]]

_DECIMAL, _DATETIME, _ENUM, _MODEL = 1, 2, 3, 4
# The table models load with the first storage message, not with this module: the Monitor only
# sends close requests, and Ray imports its module in every process that holds its handle.
_MODELS: dict[str, Any] = {}
_FIELDS: dict[str, tuple[str, ...]] = {}


def _load_models() -> None:
    from aitrader.models.entities import Balance, Order, Position

    for model in (Order, Position, Balance):
        _FIELDS[model.__name__] = tuple(model.model_fields)
        _MODELS[model.__name__] = model


_ENUMS: dict[str, type[Enum]] = {
    name: value for name, value in vars(_enums).items()
    if isinstance(value, type) and issubclass(value, Enum) and value.__module__ == _enums.__name__
}
_ENCODER = msgspec.msgpack.Encoder()


_PLAIN = frozenset({str, int, bool, float, type(None)})


def _pack(value: Any) -> Any:
    """``value`` with every value msgpack cannot carry as itself replaced by an extension."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is Decimal:
        return msgspec.msgpack.Ext(_DECIMAL, str(value).encode())
    if kind is datetime:
        return msgspec.msgpack.Ext(_DATETIME, value.isoformat().encode())
    if kind is list or kind is tuple:
        return [item if type(item) in _PLAIN else _pack(item) for item in value]
    if kind is dict:
        return {key: item if type(item) in _PLAIN else _pack(item) for key, item in value.items()}
    if isinstance(value, Enum) and kind.__name__ in _ENUMS:
        return msgspec.msgpack.Ext(_ENUM, f"{kind.__name__}:{value.value}".encode())
    fields = _FIELDS.get(kind.__name__)
    if fields is not None and _MODELS[kind.__name__] is kind:
        loaded = value.__dict__  # a row's loaded fields, read without SQLAlchemy's attribute descriptors
        items = [loaded[name] if name in loaded else getattr(value, name) for name in fields]
        packed = [kind.__name__, [item if type(item) in _PLAIN else _pack(item) for item in items]]
        return msgspec.msgpack.Ext(_MODEL, _ENCODER.encode(packed))
    raise TypeError(f"cannot send a {kind.__name__} to storage as msgpack: {value!r}")


def _ext(code: int, data: memoryview) -> Any:
    text = bytes(data)
    if code == _DECIMAL:
        return Decimal(text.decode())
    if code == _DATETIME:
        return datetime.fromisoformat(text.decode())
    if code == _ENUM:
        name, _, member = text.decode().partition(":")
        return _ENUMS[name](member)
    if code == _MODEL:
        name, values = _DECODER.decode(text)
        return _MODELS[name].model_construct(**dict(zip(_FIELDS[name], values, strict=True)))
    raise ValueError(f"unknown msgpack extension {code} in a storage message")


_DECODER = msgspec.msgpack.Decoder(ext_hook=_ext)


def encode_writes(writes: Sequence[Write]) -> bytes:
    """Storage calls ((method, args, kwargs), ...) as one msgpack message."""
    if not _MODELS:
        _load_models()
    return _ENCODER.encode([[method, _pack(args), _pack(kwargs)] for method, args, kwargs in writes])


def decode_writes(message: bytes) -> list[Write]:
    """The storage calls of an `encode_writes` message."""
    if not _MODELS:
        _load_models()
    return [(method, tuple(args), kwargs) for method, args, kwargs in _DECODER.decode(message)]


def encode_results(results: Sequence[Any]) -> bytes:
    """Storage call results (models, tuples of them, amounts) as one msgpack message."""
    if not _MODELS:
        _load_models()
    return _ENCODER.encode(_pack(list(results)))


def decode_results(message: bytes) -> list[Any]:
    """The results of an `encode_results` message (tuples come back as lists)."""
    if not _MODELS:
        _load_models()
    results = _DECODER.decode(message)
    assert isinstance(results, list)
    return results


# -- the Monitor's close requests to the Executor, and the position view it answers ------------

_CLOSE_REQUEST = msgspec.msgpack.Decoder(tuple[str, str, str | None])
_VIEW = msgspec.msgpack.Decoder(dict[str, Any])


def encode_close_request(position_id: str, reason: str, trigger_price: str | None) -> bytes:
    """A close of one position (the arguments of ``Executor.close_position``) as msgpack."""
    return _ENCODER.encode([position_id, reason, trigger_price])


def decode_close_request(message: bytes) -> tuple[str, str, str | None]:
    return _CLOSE_REQUEST.decode(message)


def encode_view(view: dict[str, Any]) -> bytes:
    """A JSON view (strings, numbers, None) as msgpack."""
    return _ENCODER.encode(view)


def decode_view(message: bytes) -> dict[str, Any]:
    return _VIEW.decode(message)


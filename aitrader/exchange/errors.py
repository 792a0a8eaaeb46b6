"""Binance-style errors: each carries the wire ``code``, the ``msg`` and the HTTP status."""

from __future__ import annotations


class ExchangeError(Exception):
    """A request the local exchange rejects, answered as Binance's ``{"code": ..., "msg": ...}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, object]:
        """The JSON error body Binance sends."""
        return {"code": self.code, "msg": self.msg}


def missing_parameter(name: str) -> ExchangeError:
    """-1102: a mandatory parameter is absent or empty."""
    return ExchangeError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal_parameter(name: str) -> ExchangeError:
    """-1100: a parameter has illegal characters (e.g. a non-numeric quantity)."""
    return ExchangeError(
        -1100,
        f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
    )


def filter_failure(filter_type: str) -> ExchangeError:
    """-1013: an order breaks one of the symbol's filters."""
    return ExchangeError(-1013, f"Filter failure: {filter_type}")


def invalid_symbol() -> ExchangeError:
    """-1121: the symbol is not listed."""
    return ExchangeError(-1121, "Invalid symbol.")


def insufficient_balance() -> ExchangeError:
    """-2010: the account cannot pay for the order."""
    return ExchangeError(-2010, "Account has insufficient balance for requested action.")


def duplicate_order() -> ExchangeError:
    """-2010: ``newClientOrderId`` repeats an order that is still open."""
    return ExchangeError(-2010, "Duplicate order sent.")


def unknown_order() -> ExchangeError:
    """-2011: cancel of an order that is unknown or no longer open."""
    return ExchangeError(-2011, "Unknown order sent.")


def order_does_not_exist() -> ExchangeError:
    """-2013: query of an order that does not exist."""
    return ExchangeError(-2013, "Order does not exist.")


def bad_signature() -> ExchangeError:
    """-1022: HMAC signature does not match."""
    return ExchangeError(-1022, "Signature for this request is not valid.")


def outside_recv_window() -> ExchangeError:
    """-1021: ``timestamp`` too old or too far ahead."""
    return ExchangeError(-1021, "Timestamp for this request is outside of the recvWindow.")


def api_key_format_invalid() -> ExchangeError:
    """-2014: missing or malformed ``X-MBX-APIKEY``."""
    return ExchangeError(-2014, "API-key format invalid.", status=401)


def invalid_api_key() -> ExchangeError:
    """-2015: API key rejected."""
    return ExchangeError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)

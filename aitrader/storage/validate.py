"""Validating a table model's data without the cost of a table row.

``Model.model_validate`` of a SQLModel table model runs pydantic's validator (~15 us for an order)
and then sets every field again through SQLAlchemy's attribute instrumentation (~150 us). A write
needs only the validated values: `validated_values` runs the same validator — every field type,
field validator, model validator and default — into an instance without SQLAlchemy state and
returns its fields. (A model validator reading ``self.field`` there gets the value from the
instance's ``__dict__``, SQLAlchemy's fast path for a loaded attribute; that needs the mappers
configured, which the first call makes sure of.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import configure_mappers
from sqlmodel import SQLModel

M = TypeVar("M", bound=SQLModel)
_configured = False


def validated_values(model: type[SQLModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` validated as ``model`` (raises pydantic's `ValidationError`): every field, defaults filled in."""
    global _configured
    if not _configured:
        configure_mappers()
        _configured = True
    shell = model.__new__(model)  # no SQLAlchemy state: the validator fills its __dict__ and nothing else
    model.__pydantic_validator__.validate_python(data, self_instance=shell)
    return {name: shell.__dict__[name] for name in model.model_fields}


def validated(model: type[M], data: Mapping[str, Any]) -> M:
    """A row of ``model`` from ``data``, validated as `Model.model_validate` does, for a fraction of its cost."""
    return model.model_construct(**validated_values(model, data))

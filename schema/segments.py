"""GraphQL types of segments: the definition tree (input), saved segments, validation."""

from __future__ import annotations

import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.segments import Segment as SegmentResult
from app.segments import to_json
from schema.enums import FilterOp


@strawberry.input(
    description="A node of a segment definition: either a condition (`field`, `op`, "
    "`values`: the FilterOp set; fields are metric dimensions, attr.<key>, email, name, "
    "external_id, source, customer_since, mrr) or exactly one of `and`, `or`, `not`."
)
class SegmentNodeInput:
    field: str | None = None
    op: FilterOp | None = None
    values: list[str] | None = None
    and_: list[SegmentNodeInput] | None = strawberry.field(default=None, name="and")
    or_: list[SegmentNodeInput] | None = strawberry.field(default=None, name="or")
    not_: SegmentNodeInput | None = strawberry.field(default=None, name="not")

    def to_json(self) -> dict[str, Any]:
        """The JSON form app.segments reads (its parser reports a malformed node)."""
        data: dict[str, Any] = {}
        if self.field is not None:
            data["field"] = self.field
        if self.op is not None:
            data["op"] = self.op.value
        if self.values is not None:
            data["values"] = list(self.values)
        for key, items in (("and", self.and_), ("or", self.or_)):
            if items is not None:
                data[key] = [item.to_json() for item in items]
        if self.not_ is not None:
            data["not"] = self.not_.to_json()
        return data


@strawberry.type(description="A saved segment: a named boolean tree of customer conditions.")
class Segment:
    id: strawberry.ID
    name: str
    description: str
    definition: JSON = strawberry.field(
        description='Its tree: {"and"|"or": [...]}, {"not": ...} or {field, op, values}.'
    )
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @classmethod
    def of(cls, found: SegmentResult) -> Segment:
        return cls(
            id=strawberry.ID(str(found.id)),
            name=found.name,
            description=found.description,
            definition=JSON(to_json(found.definition)),
            created_at=found.created_at,
            updated_at=found.updated_at,
        )


@strawberry.type(description="validateSegment: the problems of a definition (none: valid).")
class SegmentValidation:
    valid: bool
    problems: list[str]

"""Mutations: attribute definitions and values, attribute imports, saved segments. They call
the same services as the CLI; an API key needs the `write` scope (schema/security.py)."""

from __future__ import annotations

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload

from app.errors import UserError
from app.ingest.csvfile import TextLines
from resolvers import attributes as resolve_attributes
from resolvers import customers as resolve_customers
from resolvers import segments as resolve_segments
from resolvers import sources as resolve_sources
from resolvers import usage as resolve_usage
from resolvers.context import Context
from schema.attributes import Attribute, AttributeImport, AttributeValueInput
from schema.enums import AttributeType, EventStatus, SourceKind
from schema.fields import mutation
from schema.permissions import ADMIN
from schema.segments import Segment, SegmentNodeInput
from schema.selection import selected_names
from schema.sources import Source
from schema.types import Customer, customer_nodes
from schema.usage import (
    IngestEvents,
    UsageEventInput,
    UsageMetricInput,
    UsageMetricType,
    UsageMetricUpdateInput,
)

Info = strawberry.Info[Context, None]


async def _customer(info: Info, ident: int) -> Customer:
    row = await resolve_customers.customer(info.context, ident)
    [node] = await customer_nodes(info, [row], selected_names(info))
    return node


@strawberry.type
class Mutation:
    @mutation(description="Define an attribute (its type is fixed once created).")
    async def create_attribute(
        self,
        info: Info,
        key: str,
        label: str,
        type: AttributeType,
        source: str = "api",
        description: str = "",
    ) -> Attribute:
        created = await resolve_attributes.create(
            info.context, key, label, type, source, description
        )
        return Attribute.of(created)

    @mutation(description="Change an attribute's label and/or description.")
    async def update_attribute(
        self, info: Info, key: str, label: str | None = None, description: str | None = None
    ) -> Attribute:
        return Attribute.of(await resolve_attributes.update(info.context, key, label, description))

    @mutation(description="Upsert attribute values on one customer (all or none).")
    async def set_customer_attributes(
        self, info: Info, customer_id: strawberry.ID, values: list[AttributeValueInput]
    ) -> Customer:
        pairs = [(value.key, value.value) for value in values]
        ident = await resolve_attributes.set_values(info.context, customer_id, pairs)
        return await _customer(info, ident)

    @mutation(description="Remove one attribute value from a customer.")
    async def remove_customer_attribute(
        self, info: Info, customer_id: strawberry.ID, key: str
    ) -> Customer:
        ident = await resolve_attributes.remove_value(info.context, customer_id, key)
        return await _customer(info, ident)

    @mutation(
        description="Import attribute values from a CSV upload (GraphQL multipart request): "
        "first column the customer id or external id, one column per attribute key. All rows "
        "or nothing; every bad row is reported with its line and reason."
    )
    async def import_attributes(self, info: Info, file: Upload) -> AttributeImport:
        upload: object = file  # the Upload scalar is typed bytes; a multipart part is an UploadFile
        if not isinstance(upload, UploadFile):
            raise UserError(
                "file must be a file part of a GraphQL multipart request "
                "(https://github.com/jaydenseric/graphql-multipart-request-spec)"
            )
        filename = upload.filename or "upload.csv"
        try:
            rows, values = await resolve_attributes.import_file(
                info.context, TextLines(upload.file), filename
            )
        finally:
            await upload.close()
        return AttributeImport(rows=rows, values=values)

    @mutation(description="Save a segment (its definition is validated first).")
    async def create_segment(
        self, info: Info, name: str, definition: SegmentNodeInput, description: str = ""
    ) -> Segment:
        created = await resolve_segments.create(
            info.context, name, description, definition.to_json()
        )
        return Segment.of(created)

    @mutation(description="Rename, re-describe or redefine a segment.")
    async def update_segment(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = None,
        description: str | None = None,
        definition: SegmentNodeInput | None = None,
    ) -> Segment:
        data = definition.to_json() if definition is not None else None
        updated = await resolve_segments.update(info.context, id, name, description, data)
        return Segment.of(updated)

    @mutation(description="Delete a segment; returns its id.")
    async def delete_segment(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        await resolve_segments.delete(info.context, id)
        return id

    @mutation(
        description="Connect a billing system; prints its webhook path. Secrets are stored "
        "encrypted and never returned (only their last 4 characters).",
        permission_classes=ADMIN,
    )
    async def add_source(
        self,
        info: Info,
        kind: SourceKind,
        name: str,
        api_key: str,
        webhook_secret: str,
        api_base: str | None = None,
    ) -> Source:
        added = await resolve_sources.add(
            info.context, kind, name, api_key, webhook_secret, api_base
        )
        return Source.of(added)

    @mutation(
        description="Remove a source, its inbox and everything it brought in.",
        permission_classes=ADMIN,
    )
    async def remove_source(self, info: Info, id: strawberry.ID) -> Source:
        return Source.of(await resolve_sources.remove(info.context, id))

    @mutation(
        description="Queue a source's events of a status (default FAILED) again; how many.",
        permission_classes=ADMIN,
    )
    async def replay_events(
        self, info: Info, source_id: strawberry.ID, status: EventStatus = EventStatus.FAILED
    ) -> int:
        return await resolve_sources.replay(info.context, source_id, status)

    @mutation(
        description="Start a source's backfill in the background (resumes an interrupted one).",
        permission_classes=ADMIN,
    )
    async def backfill_source(self, info: Info, id: strawberry.ID) -> Source:
        return Source.of(await resolve_sources.backfill(info.context, id))

    @mutation(description="Define a usage metric (METRICS.md 9); INDEXED ones are built now.")
    async def create_usage_metric(self, info: Info, input: UsageMetricInput) -> UsageMetricType:
        return UsageMetricType.of(await resolve_usage.create(info.context, input.to_input()))

    @mutation(description="Change a usage metric; aggregation and valueType are immutable.")
    async def update_usage_metric(
        self, info: Info, id: strawberry.ID, input: UsageMetricUpdateInput
    ) -> UsageMetricType:
        updated = await resolve_usage.update(info.context, id, input.to_update())
        return UsageMetricType.of(updated)

    @mutation(description="Soft-delete a usage metric: gone from the list, readable by id.")
    async def delete_usage_metric(self, info: Info, id: strawberry.ID) -> UsageMetricType:
        return UsageMetricType.of(await resolve_usage.delete(info.context, id))

    @mutation(
        description="Ingest usage events (at most 10,000, as POST /events). "
        "Each event is checked on its own: the bad ones are listed with their reason, the "
        "others stored; a repeated id (per source) is a duplicate, never applied twice."
    )
    async def ingest_events(
        self, info: Info, events: list[UsageEventInput], source: str = "events"
    ) -> IngestEvents:
        raw = [event.to_raw() for event in events]
        return IngestEvents.of(await resolve_usage.ingest_events(info.context, raw, source))

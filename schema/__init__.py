"""The GraphQL schema: Strawberry types mirroring the service's results. No SQL here."""

from schema.root import schema

__all__ = ["schema"]

"""Thin resolvers: GraphQL arguments -> frozen specs -> the metrics service -> results."""

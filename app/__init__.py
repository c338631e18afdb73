"""Tidemill: subscription-revenue metrics over GraphQL."""

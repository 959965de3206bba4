"""Billing: rate decks, rating, billing runs (issue 11)."""

"""Static web pages of openflix (templates/ and static/)."""

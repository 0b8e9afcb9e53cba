"""Open Connect: inventory, steering, fill — a pure core (no Flask, SQLAlchemy, Redis or boto3)."""

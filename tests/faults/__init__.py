"""Fault tests: workers killed mid-job, Redis and PostgreSQL restarted under a running API."""

"""Background jobs: RQ on Redis in production, in-process by default; tasks call use cases of services/."""

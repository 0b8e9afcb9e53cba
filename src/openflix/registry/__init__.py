"""Model registry: versioned model artifacts, promotion and A/B cells."""

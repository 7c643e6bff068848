"""tsad detector: the production side (model, bundle, scoring, deciding, Kafka worker)."""

__version__ = "0.1.0"

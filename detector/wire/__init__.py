"""Wire formats: window messages in (decode + validate, with a reason for every refusal) and records out."""

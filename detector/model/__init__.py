"""The model artefact and its use: architectures, input scaling, scoring, deciding, and the bundle that carries
them. This is the contract the trainer builds against; nothing here knows Kafka or a wire format."""

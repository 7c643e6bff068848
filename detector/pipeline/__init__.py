"""The worker's loop and the units it drives: batching, processing, delivery, offsets, commit strategies,
backpressure and the error policy."""

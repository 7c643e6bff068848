"""Build the configured client's Source and Sink (transactional in exactly-once mode)."""

from __future__ import annotations

from detector.config import Config
from detector.kafka import settings
from detector.kafka.renewing_state import RenewingStateReader
from detector.kafka.seams import RebalanceListener, Sink, Source, StateReader


def kafka_clients(config: Config, listener: RebalanceListener) -> tuple[Source, Sink]:
    """The Source on the input topic and the Sink for every output topic; raises BrokerError if a client cannot
    be made."""
    k = config.kafka
    if k.client == "confluent":
        from detector.kafka import confluent  # optional dependency, imported only when chosen

        sink: Sink = confluent.TransactionalConfluentSink(k) if k.exactly_once else confluent.ConfluentSink(k)
        return confluent.ConfluentSource(k, config.topics.input, listener, config.worker.max_poll_records,
                                         fetch_bytes(config)), sink
    from detector.kafka import kafka_python, kafka_python_source

    sink = kafka_python.TransactionalKafkaSink(k) if k.exactly_once else kafka_python.KafkaSink(k)
    return kafka_python_source.KafkaSource(k, config.topics.input, listener, config.worker.max_poll_records,
                                    fetch_bytes(config)), sink


def fetch_bytes(config: Config) -> int:
    """How much one fetch may bring of one partition: the clients' 1 MiB default, or, where batched messages may
    arrive, a whole batched message at its size limit (at 1 MiB a fetch of 560 KB messages brought one or two of
    them per round trip, and the worker waited on the broker)."""
    if config.input.format in ("batch", "auto"):
        return max(settings.FETCH_BYTES, config.input.max_batch_bytes)
    return settings.FETCH_BYTES


def state_reader(config: Config) -> StateReader:
    """A reader of the episode-state topic with the configured client, made anew after a failed read."""
    k = config.kafka
    if k.client == "confluent":
        from detector.kafka import confluent_state

        return RenewingStateReader(lambda: confluent_state.ConfluentStateReader(k))
    from detector.kafka import kafka_python_state

    return RenewingStateReader(lambda: kafka_python_state.KafkaStateReader(k))

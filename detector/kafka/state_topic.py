"""The episode-state topic must have exactly the input's partition count (a source's state lives in the partition
number its windows arrive on). The worker checks that at start-up and creates the topic, compacted, if it is missing
(where ACLs forbid that, create it beforehand; docs/episodes.md)."""

from __future__ import annotations

import contextlib
import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from detector.config import Config, ConfigError
from detector.kafka import settings
from detector.kafka.seams import StateReader, translated

log = logging.getLogger("tsad.kafka")


def ensure_state_topic(config: Config, reader: StateReader) -> None:
    """Raises ConfigError when the partition counts differ (or the input is missing), BrokerError on client trouble."""
    topics = config.topics
    inputs = reader.partitions(topics.input)
    if inputs is None:
        raise ConfigError(f"topics.input: topic {topics.input!r} does not exist; the episode-state topic "
                          f"{config.state_topic!r} needs its partition count (create the input topic first)")
    existing = reader.partitions(config.state_topic)
    if existing is None:
        _keep_or_leave_the_earlier_default(config, reader)
        _create(config, config.state_topic, inputs)
        log.info("created the episode-state topic %s (%d partitions, compacted)", config.state_topic, inputs)
        return
    if existing != inputs:
        raise ConfigError(f"topics.episode_state: {config.state_topic!r} has {existing} partitions, the input "
                          f"{topics.input!r} has {inputs}; they must match (recreate the state topic)")


def _keep_or_leave_the_earlier_default(config: Config, reader: StateReader) -> None:
    """Before the default followed the consumer group it was "<input>-episode-state". A deployment that relied on it
    would otherwise start afresh here, its open episodes never closed: it must choose."""
    earlier = f"{config.topics.input}-episode-state"
    if config.topics.episode_state is None and reader.partitions(earlier) is not None:
        raise ConfigError(f"topics.episode_state: the default episode-state topic now follows the consumer group "
                          f"({config.state_topic!r}) and {earlier!r}, the earlier default, exists: set "
                          f"topics.episode_state to {earlier!r} to keep its episodes (if only this group used it), "
                          f"or to {config.state_topic!r} to start afresh")


def _create(config: Config, name: str, partitions: int) -> None:
    options = settings.render(settings.connection(config.kafka), "kafka-python")
    with translated("create the episode-state topic", KafkaError, AssertionError):
        admin = KafkaAdminClient(**options)
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, partitions, topic_configs={"cleanup.policy": "compact"})])
        finally:
            admin.close()



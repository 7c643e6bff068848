"""The Kafka seams (Source, Sink, their records and BrokerError), one client-neutral settings table, one module per
client library, the transaction bracket, and the factory that builds clients from the config."""

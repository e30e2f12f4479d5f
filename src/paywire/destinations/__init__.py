"""Event destinations: where the delivery engine sends an event, one module per transport.

The outbox (`events.log`, `webhooks.delivery`) knows no transport; the dispatcher hands each
claimed delivery (`Job`) to the destination of its type (`pool.Pool`), which turns it into a
message, sends it, and classifies what came of it (`base.SendOutcome`): success, retry, give up or
disable. Types: `webhook` (HTTP), `rabbitmq`, `nats` (JetStream), `redis` (Streams). Adding one
(Kafka, SQS…) is one module with a `Destination` class, its config check in `config.py`, and
its name in `pool.FACTORIES`.
"""

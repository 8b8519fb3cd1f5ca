"""Declare this environment's Celery queue and its dead-letter queue on RabbitMQ before the
services start: Celery declares the queue it consumes, but nothing declares the queue its
rejected messages are routed to, and relnb's B7/D7 read that queue's depth."""

import os
import sys

from kombu import Connection, Exchange, Queue

queue = os.environ.get("SUPERSET_CELERY_QUEUE", "superset")
with Connection(os.environ["SUPERSET_BROKER_URL"], connect_timeout=10) as conn:
    channel = conn.default_channel
    Queue(f"{queue}.dlq", Exchange(""), routing_key=f"{queue}.dlq", durable=True).declare(channel=channel)
    Queue(queue, Exchange(queue), routing_key=queue, durable=True, queue_arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{queue}.dlq",
    }).declare(channel=channel)
print(f"declared {queue} and {queue}.dlq", file=sys.stderr)

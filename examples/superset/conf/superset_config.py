"""Apache Superset's configuration on every host of this deployment (SUPERSET_CONFIG_PATH points
here). What differs between hosts comes from the environment, listed in superset.env.example, so
the file is the same on staging and production and secrets never sit in the repository.
"""

import os
import time
from datetime import timedelta
from urllib.parse import urlsplit

from cachelib.redis import RedisCache
from kombu import Exchange, Queue

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_DATABASE_URL"]

# Celery on RabbitMQ. One queue per environment; a message the worker rejects (or loses with its
# worker) is dead-lettered to "<queue>.dlq", which deploy/queues.py declares and relnb's B7/D7 watch.
QUEUE = os.environ.get("SUPERSET_CELERY_QUEUE", "superset")
DEAD_LETTERS = f"{QUEUE}.dlq"


class CeleryConfig:
    broker_url = os.environ["SUPERSET_BROKER_URL"]
    imports = ("superset.sql_lab", "superset.tasks.scheduler", "superset.tasks.cache")
    result_backend = None  # SQL Lab keeps a query's state in the metadata database
    task_default_queue = QUEUE
    task_queues = (
        Queue(QUEUE, Exchange(QUEUE), routing_key=QUEUE,
              queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": DEAD_LETTERS}),
    )
    task_default_exchange = QUEUE
    task_default_routing_key = QUEUE
    worker_prefetch_multiplier = 1
    task_acks_late = True
    task_reject_on_worker_lost = True


CELERY_CONFIG = CeleryConfig

# SQL Lab's asynchronous queries run on the worker and leave their results here
_redis = urlsplit(os.environ["SUPERSET_REDIS_URL"])
RESULTS_BACKEND = RedisCache(
    host=_redis.hostname or "localhost", port=_redis.port or 6379, password=_redis.password,
    db=int((_redis.path or "/0").lstrip("/") or 0), key_prefix=f"superset_results_{QUEUE}",
)

# the smoke flows' token is minted when the release starts; the window after a deploy is longer
# than the 15 minutes Superset's API tokens last by default
JWT_ACCESS_TOKEN_EXPIRES = timedelta(hours=4)

# the dashboard team's frontend calls Superset's API with a token (B9 checks the preflight)
ENABLE_CORS = True
CORS_OPTIONS = {
    "origins": [o for o in os.environ.get("SUPERSET_CORS_ORIGINS", "").split(",") if o],
    "supports_credentials": False,
    "allow_headers": ["Authorization", "Content-Type"],
}


def FLASK_APP_MUTATOR(app):
    """Prometheus metrics at /metrics: Superset reports to statsd only, and this deployment has
    no statsd. Requests by status, and their duration, as the web process answered them (run
    gunicorn with one worker process, threads for concurrency, so the counters are one series)."""
    from flask import Response, g, request
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

    if "http_requests_total" in getattr(REGISTRY, "_names_to_collectors", {}):
        return  # the app is created twice in one process (the CLI): count once
    requests = Counter("http_requests", "HTTP requests answered, by status", ["method", "status"])
    duration = Histogram("http_request_duration_seconds", "time to answer an HTTP request", ["method"])

    def _started() -> None:
        g.metrics_started = time.perf_counter()

    # first of all before-request hooks: a request refused by one (CSRF, rate limit) is still
    # counted, with its status, and timed
    app.before_request_funcs.setdefault(None, []).insert(0, _started)

    def _answered(response):
        # Superset's CORS answers say which origin they allow but not that they vary by it:
        # a shared cache could hand one frontend's answer to another (relnb's B9 caught it)
        if "Access-Control-Allow-Origin" in response.headers:
            response.vary.add("Origin")
        if request.path != "/metrics":
            requests.labels(request.method, str(response.status_code)).inc()
            started = g.get("metrics_started")
            if started is not None:
                duration.labels(request.method).observe(time.perf_counter() - started)
        return response

    # after-request hooks run last-registered first: this one goes last, after Superset's own
    # (which rewrite Vary), so it sees the final status and headers
    app.after_request_funcs.setdefault(None, []).insert(0, _answered)

    app.add_url_rule("/metrics", "metrics", lambda: Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST))

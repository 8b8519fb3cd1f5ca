"""NetBox configuration of this deployment: every value that differs between staging and
production, and every secret, comes from the environment (systemd's EnvironmentFile, see
netbox.env.example), so the same file is deployed everywhere and holds no secret."""

import os
from urllib.parse import unquote, urlsplit


def _require(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: see netbox.env.example")
    return value


def _database(url):
    u = urlsplit(url)
    return {
        "ENGINE": "django_prometheus.db.backends.postgresql",
        "NAME": u.path.lstrip("/"),
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "localhost",
        "PORT": str(u.port or ""),
        "CONN_MAX_AGE": 300,
    }


ALLOWED_HOSTS = os.environ.get("NETBOX_ALLOWED_HOSTS", "*").split(",")
DATABASES = {"default": _database(_require("NETBOX_DATABASE_URL"))}
REDIS = {
    "tasks": {"URL": _require("NETBOX_REDIS_URL")},
    "caching": {"URL": _require("NETBOX_CACHE_REDIS_URL")},
}
SECRET_KEY = _require("NETBOX_SECRET_KEY")
API_TOKEN_PEPPERS = {1: _require("NETBOX_API_TOKEN_PEPPER")}
CORS_ORIGIN_WHITELIST = [o for o in os.environ.get("NETBOX_CORS_ORIGINS", "").split(",") if o]
METRICS_ENABLED = True
RELEASE_CHECK_URL = None
TIME_ZONE = "UTC"
LOGGING = {"version": 1, "disable_existing_loggers": False}

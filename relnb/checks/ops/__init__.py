"""Is what surrounds the service ready: green CI, committed deploy files, images, backups, secrets
and alerting?"""

# gunicorn settings of the NetBox web service (deploy/netbox.service).
bind = "127.0.0.1:8001"
workers = 4
threads = 2
timeout = 120
max_requests = 5000
max_requests_jitter = 500

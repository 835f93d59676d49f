"""Gunicorn settings for production: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
timeout = 60

# %(U)s is the path without the query string: the OAuth callback's query carries the
# authorization code and state, which must not reach the access log.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss "%(a)s"'
errorlog = "-"

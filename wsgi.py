"""WSGI entry point: ``gunicorn wsgi:app``, and the app that ``flask`` commands load."""

import sys

from app import create_app
from app.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # The message names the variable to set; a traceback would only bury it.
    sys.exit(f"Error: {error}")

"""The web UI: the built single-page app, served at ``/``."""

"""Genesys Cloud client: OAuth, REST over httpx, notifications over websockets."""

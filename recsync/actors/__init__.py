"""Dramatiq actors and their logic: fetch, subscribe, reconcile.

The actors themselves live in :mod:`recsync.actors.tasks`, which declares them on the
installed broker when it is imported (``dramatiq recsync.actors.tasks`` runs a worker
for them). This package's own import is light, so the broker can be chosen first.
"""

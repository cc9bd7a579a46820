"""Benchmarks: five ways to sync recording metadata, run against the emulator.

``python -m bench`` runs every strategy on the same scenario and writes
``BENCHMARKS.md`` and the plots under ``docs/bench/``.
"""

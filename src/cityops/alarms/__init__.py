"""Alarm rules, their evaluation on ingest and by the worker, the alarm lifecycle, alarm → case."""

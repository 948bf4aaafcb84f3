"""Devices and their readings: HTTP and MQTT ingestion, storage, roll-ups, series."""

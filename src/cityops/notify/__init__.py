"""Outbound messages: an outbox filled by case actions, delivered by the worker through
pluggable channels (in-app, SMS gateway, work-app webhook), retried with back-off."""

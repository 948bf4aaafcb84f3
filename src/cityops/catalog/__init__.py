"""Governance catalogue: case categories with time limits, the working calendar, sectors."""

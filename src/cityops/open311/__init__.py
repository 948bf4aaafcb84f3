"""Open311 GeoReport v2 adapter over the event center (services = categories, requests = cases)."""

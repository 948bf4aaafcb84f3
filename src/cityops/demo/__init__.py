"""The Kaizhou demo district: synthetic geometry, units, people and (later) a live simulator."""

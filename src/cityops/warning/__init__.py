"""Landslide early warning: risk points, households, analytics, warnings, CAP 1.2, evacuation."""

"""Regions: district → town → village → grid, their geometry and the point locator."""

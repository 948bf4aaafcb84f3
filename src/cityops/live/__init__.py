"""The live feed: every change worth showing on a screen, in commit order, for every process."""

"""Sharing: which cases may leave for which tier, and the immutable release folders that carry them."""

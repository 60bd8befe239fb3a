"""The in-memory book: every piece of state a check reads, indexed for O(1) access."""

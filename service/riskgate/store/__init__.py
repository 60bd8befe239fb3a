"""Redis: the durable source of truth and the change bus."""

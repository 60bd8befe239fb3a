"""The `riskgate` command: serve, try an order, and operator controls."""

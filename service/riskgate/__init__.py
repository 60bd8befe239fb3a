"""riskgate: the pre-trade risk gate."""

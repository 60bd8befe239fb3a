"""Open-loop load-test harness for riskgate: `python -m loadtest` (see loadtest/README.md)."""

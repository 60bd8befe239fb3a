"""riskgate: the pre-trade risk gate."""

from riskgate.compiled import verify_fresh

# Before any hot-path module is imported: a stale compiled module must not run in its source's place.
verify_fresh()

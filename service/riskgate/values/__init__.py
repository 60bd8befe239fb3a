"""Value types at the bottom of the layers: money, codes, tiers. They import nothing of riskgate."""

"""`riskgate monitor`: watches what the gate cannot see order by order, acts by written rules
through the same audited, versioned write path as an operator, and leaves alerts people work."""

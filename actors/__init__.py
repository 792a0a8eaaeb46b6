"""Ray actors: thin shells that own one piece of state each and call the core."""

NAMESPACE = "aitrader"

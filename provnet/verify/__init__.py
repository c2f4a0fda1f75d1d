"""`provnet verify`: testinfra checks per site, findings per layer, one root cause per site."""

"""Local exchange speaking Binance's Spot wire protocol over a seeded synthetic market."""

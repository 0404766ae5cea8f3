"""Reply intelligence: reduce an inbound message to its new text, classify it, act on it."""

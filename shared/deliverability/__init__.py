"""Deliverability: send caps and counters, suppression, unsubscribe links, mailbox health."""

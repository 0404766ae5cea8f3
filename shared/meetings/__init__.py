"""Meetings: slot proposals inside the rep's working hours, the prospect's choice, booking."""

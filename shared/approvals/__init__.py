"""Approvals: requests tied to actions, human decisions, expiry, step-template approvals."""

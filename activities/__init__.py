"""Thin activity functions: one pydantic input, shared services, one transaction each."""

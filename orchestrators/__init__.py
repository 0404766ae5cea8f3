"""Durable orchestrator generators (ARCHITECTURE.md §4): deterministic, no I/O."""

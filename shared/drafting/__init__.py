"""Drafting: structured drafts with the facts they use, and content risk checks."""

"""Placeholder (filled in below by the mutation triage, docs/mutation.md)."""

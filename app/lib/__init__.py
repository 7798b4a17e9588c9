"""Shared plumbing: settings and database."""

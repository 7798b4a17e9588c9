"""Accounts: users, passwords, tokens."""

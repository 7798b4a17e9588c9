"""Importing transaction exports: reading, validating and loading them."""

"""The allocators' settings (app.lib.memory): a process started by one that imported Polars first
still hands freed memory back at once, and a user's own jemalloc setting is kept."""

from __future__ import annotations

import os
import subprocess
import sys


def _conf_in_child(environment: dict[str, str]) -> str:
    """jemalloc's setting as Polars gives it to its allocator, in a fresh process importing the app."""
    code = "import app, polars, os; print(os.environ['_RJEM_MALLOC_CONF'])"
    env = {key: value for key, value in os.environ.items() if key != "_RJEM_MALLOC_CONF"} | environment
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_the_app_sets_prompt_return_even_over_what_polars_left_in_the_environment():
    # (Polars appends a setting it finds to its own defaults: the last value of a key wins)
    assert _conf_in_child({}).strip().endswith("dirty_decay_ms:0,muzzy_decay_ms:0")
    inherited = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:500,muzzy_decay_ms:1000"}  # Polars' own, from a parent
    assert _conf_in_child(inherited).strip().endswith("dirty_decay_ms:0,muzzy_decay_ms:0")


def test_a_users_own_setting_is_kept():
    assert _conf_in_child({"_RJEM_MALLOC_CONF": "dirty_decay_ms:2000"}).strip().endswith(",dirty_decay_ms:2000")

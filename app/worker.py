"""What the taskiq worker and scheduler load: the broker, the scheduler, every task module, the log format.

PYTHONPATH=. uv run taskiq worker app.worker:broker --no-configure-logging
PYTHONPATH=. uv run taskiq scheduler app.worker:scheduler --no-configure-logging
"""

import signal

import polars  # noqa: F401  (imported before the SIGINT handler is given back, below)

from app.lib.broker import broker, scheduler, settings
from app.lib.logs import configure_process_logging
from app.metrics import jobs

configure_process_logging(settings)

# Importing Polars installs a native SIGINT hook that aborts any running query with KeyboardInterrupt
# (pola-rs/polars#20961). taskiq stops a worker with SIGINT and lets it finish its task
# (--wait-tasks-timeout), so SIGINT goes back to the handler taskiq installed before it imported this module.
signal.signal(signal.SIGINT, signal.getsignal(signal.SIGINT))

__all__ = ["broker", "jobs", "scheduler"]

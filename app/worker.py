"""What the taskiq worker and scheduler load: the broker, the scheduler, every task module, the log format.

PYTHONPATH=. uv run taskiq worker app.worker:broker --no-configure-logging
PYTHONPATH=. uv run taskiq scheduler app.worker:scheduler --no-configure-logging
"""

from app.lib.broker import broker, scheduler, settings
from app.lib.logs import configure_process_logging
from app.metrics import jobs

configure_process_logging(settings)

__all__ = ["broker", "jobs", "scheduler"]

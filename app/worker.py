"""What the taskiq worker and scheduler load: the broker, the scheduler and every task module.

PYTHONPATH=. uv run taskiq worker app.worker:broker
PYTHONPATH=. uv run taskiq scheduler app.worker:scheduler
"""

from app.lib.broker import broker, scheduler
from app.metrics import jobs

__all__ = ["broker", "jobs", "scheduler"]

"""What the commands that run a process of the stack share (graph workers, the scheduler,
the webhook sender, the purger): their settings, and log lines on stderr that name them."""

from __future__ import annotations

import logging
import sys

from core.settings import Settings


def process_settings(name: str) -> Settings:
    """The settings from the environment, with logging to stderr as `<time> <name> <message>`."""
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format=f"%(asctime)s {name} %(message)s")
    return settings

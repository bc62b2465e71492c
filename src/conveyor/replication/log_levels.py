"""The task setting Logging.LogComponents: each component's severity sets the
level of the Python loggers of the Conveyor modules that do its work (the map
is ``settings_support.LOG_COMPONENTS``) while the task runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.replication.settings import Logging, LogSeverity
from conveyor.replication.settings_support import LOG_COMPONENTS

DETAILED_DEBUG = 5
LEVELS: dict[LogSeverity, int] = {
    LogSeverity.LOGGER_SEVERITY_DEFAULT: logging.NOTSET,
    LogSeverity.LOGGER_SEVERITY_ERROR: logging.ERROR,
    LogSeverity.LOGGER_SEVERITY_WARNING: logging.WARNING,
    LogSeverity.LOGGER_SEVERITY_INFO: logging.INFO,
    LogSeverity.LOGGER_SEVERITY_DEBUG: logging.DEBUG,
    LogSeverity.LOGGER_SEVERITY_DETAILED_DEBUG: DETAILED_DEBUG,
}
"""DEFAULT leaves the logger at the process's level (INFO in a worker)."""


def component_levels(settings: Logging) -> dict[str, int]:
    """Logger name -> level, from the components the settings name."""
    levels: dict[str, int] = {}
    for component in settings.log_components:
        for name in LOG_COMPONENTS.get(component.id, ()):
            levels[name] = LEVELS[component.severity]
    return levels


@contextmanager
def log_levels(settings: Logging) -> Iterator[None]:
    """Inside, the components' loggers log at their severities; restored after."""
    levels = component_levels(settings)
    previous = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)

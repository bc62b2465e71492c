"""Conveyor: self-hosted database migration and replication."""

__version__ = "0.1.0"

"""Orchestration: running Step Functions state machines (ASL) on Conveyor's own engine."""

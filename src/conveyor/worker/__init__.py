"""The task worker process (``python -m conveyor.worker TASK --run ID``), started
detached by ``replication.worker.spawn_worker``. An adapter like the CLI and the
API: it reads the applied stack, wires the task's lifecycle events to the event
bus, and runs the claimed run with ``replication``."""

"""The application service layer: :class:`Conveyor`, the public Python API, with
typed answers (``models.py``). The CLI, the REST API and the web console are thin
adapters over it; it sits above orchestration and below every adapter."""

from conveyor.service.conveyor import Conveyor

__all__ = ["Conveyor"]

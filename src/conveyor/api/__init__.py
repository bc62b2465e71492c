"""The REST API of ``conveyor serve`` (FastAPI; OpenAPI document at /openapi.json)."""

"""Serving the student: a Ray Serve deployment with a FastAPI ingress (``app``), its request/response schemas
(``schemas``), the per-replica scorer (``scorer``) and the application's arguments (``config``)."""

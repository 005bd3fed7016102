"""The inference service: dialogue store now; Celery tasks and the engine as they land."""

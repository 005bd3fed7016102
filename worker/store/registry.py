"""The model registry: which checkpoint versions exist, and which one the workers serve.

Its own room beside the dialogue store (same database, its own table): the retraining loop
registers candidates, an operator or the gate promotes one, and every worker asks for the
active version between batches (hot reload).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from worker.store.dialect import insert_ignore
from worker.store.models import ModelVersion, utcnow


class ModelRegistry:
    def __init__(self, sessions: sessionmaker[Session], reads: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.reads = reads

    def register_model(self, version_id: str, path: str, metrics: dict[str, Any]) -> None:
        with self.sessions() as s, s.begin():
            insert_ignore(
                s,
                ModelVersion,
                id=version_id,
                path=path,
                metrics=metrics,
                status="candidate",
                created_at=utcnow(),
            )

    def promote(self, version_id: str) -> None:
        """Makes ``version_id`` the one active model; the previous one is retired."""
        with self.sessions() as s, s.begin():
            if s.get(ModelVersion, version_id) is None:
                raise ValueError(f"unknown model version {version_id}")
            s.execute(
                update(ModelVersion)
                .where(ModelVersion.status == "active", ModelVersion.id != version_id)
                .values(status="retired")
            )
            s.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id)
                .values(status="active", promoted_at=utcnow())
            )

    def retire(self, version_id: str) -> None:
        """Takes ``version_id`` out of service; with no active version workers serve
        MODEL_DIR."""
        with self.sessions() as s, s.begin():
            if s.get(ModelVersion, version_id) is None:
                raise ValueError(f"unknown model version {version_id}")
            s.execute(
                update(ModelVersion).where(ModelVersion.id == version_id).values(status="retired")
            )

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered version, newest first."""
        with self.reads() as s:
            rows = s.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc())).all()
            return [
                {
                    "id": m.id,
                    "path": m.path,
                    "status": m.status,
                    "metrics": m.metrics,
                    "created_at": m.created_at.isoformat(),
                    "promoted_at": m.promoted_at.isoformat() if m.promoted_at else None,
                }
                for m in rows
            ]

    def active_model(self) -> tuple[str, str] | None:
        """(version id, path) of the active model, if any."""
        with self.reads() as s:
            row = s.execute(
                select(ModelVersion.id, ModelVersion.path).where(ModelVersion.status == "active")
            ).first()
            return (row.id, row.path) if row else None

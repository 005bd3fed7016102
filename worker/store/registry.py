"""The model registry: which checkpoint versions exist, and which one the workers serve.

Its own room beside the dialogue store (same database, its own table): the retraining loop
registers candidates, an operator or the gate promotes one, and every worker asks for the
active version between batches (hot reload). One version may be a canary: it answers a fixed
share of chats (chosen by chat id, so each chat stays with one version) while the active
version answers the rest, until it is promoted or retired.
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
        """Makes ``version_id`` the one active model (a canary it was ends); the previous
        one is retired."""
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
                .values(status="active", promoted_at=utcnow(), canary_share=None)
            )

    def start_canary(self, version_id: str, share: int) -> None:
        """Makes ``version_id`` answer ``share`` percent of chats beside the active version;
        a canary before it goes back to being a candidate."""
        if not 1 <= share <= 99:
            raise ValueError(f"a canary share is a percentage from 1 to 99, got {share}")
        with self.sessions() as s, s.begin():
            version = s.get(ModelVersion, version_id)
            if version is None:
                raise ValueError(f"unknown model version {version_id}")
            if version.status == "active":
                raise ValueError(f"{version_id[:12]} is the active version already")
            s.execute(
                update(ModelVersion)
                .where(ModelVersion.status == "canary", ModelVersion.id != version_id)
                .values(status="candidate", canary_share=None)
            )
            s.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id)
                .values(status="canary", canary_share=share)
            )

    def retire(self, version_id: str) -> None:
        """Takes ``version_id`` out of service; with no active version workers serve
        MODEL_DIR."""
        with self.sessions() as s, s.begin():
            if s.get(ModelVersion, version_id) is None:
                raise ValueError(f"unknown model version {version_id}")
            s.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id)
                .values(status="retired", canary_share=None)
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
                    "canary_share": m.canary_share,
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

    def canary(self) -> tuple[str, str, int] | None:
        """(version id, path, share in percent) of the canary, if any."""
        with self.reads() as s:
            row = s.execute(
                select(ModelVersion.id, ModelVersion.path, ModelVersion.canary_share).where(
                    ModelVersion.status == "canary"
                )
            ).first()
            return (row.id, row.path, int(row.canary_share)) if row else None

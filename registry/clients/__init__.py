"""Typed clients of the four contracts: domain-named methods returning typed records."""

from registry.clients.base import ContentRef, TxResult
from registry.clients.challenges import (
    Challenge,
    ChallengeParams,
    ChallengesClient,
    ChallengeStatus,
)
from registry.clients.jobs import JobBoardClient, JobRecord, JobSpec, JobStatus
from registry.clients.models import Access, ModelRecord, ModelRegistryClient, VersionRecord
from registry.clients.nodes import NodeRecord, NodeRegistryClient

__all__ = [
    "Access",
    "Challenge",
    "ChallengeParams",
    "ChallengeStatus",
    "ChallengesClient",
    "ContentRef",
    "JobBoardClient",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "ModelRecord",
    "ModelRegistryClient",
    "NodeRecord",
    "NodeRegistryClient",
    "TxResult",
    "VersionRecord",
]

"""A local Dyte-compatible fake: a scripted world, its signed webhooks, and the v2 REST API.

Modules: :mod:`.world` (data), :mod:`.scenario` (deterministic worlds),
:mod:`.webhooks` (payloads, faulty delivery), :mod:`.app` (Starlette REST
fake), :mod:`.server` (background uvicorn), :mod:`.cli` (``receiver sandbox``).
"""

from receiver.sandbox.app import RestFaults, SandboxState, create_sandbox_app
from receiver.sandbox.scenario import build_scenario, demo_world
from receiver.sandbox.server import start_sandbox_in_thread
from receiver.sandbox.webhooks import (
    Delivery,
    DeliveryStats,
    FaultPlan,
    deliver,
    events_for,
    for_webhook,
)
from receiver.sandbox.world import (
    SandboxLivestream,
    SandboxMeeting,
    SandboxPeer,
    SandboxRecording,
    SandboxSession,
    SandboxWebhook,
    World,
)

__all__ = [
    "Delivery",
    "DeliveryStats",
    "FaultPlan",
    "RestFaults",
    "SandboxLivestream",
    "SandboxMeeting",
    "SandboxPeer",
    "SandboxRecording",
    "SandboxSession",
    "SandboxState",
    "SandboxWebhook",
    "World",
    "build_scenario",
    "create_sandbox_app",
    "deliver",
    "demo_world",
    "events_for",
    "for_webhook",
    "start_sandbox_in_thread",
]

"""The reference's Python clients against a running sidecar.

1. The published client, datacules-agent-identity 0.13.0, unchanged: its own default timestamps,
   its exceptions for 400 and 403, its health check on GET /api/health.
2. A client shaped like the reference repository's second one (pydantic + httpx): unset optional
   fields serialised as null, GET /health.

Usage: python clients.py BASE_URL   (exits non-zero on the first failed check)
"""

import sys
from typing import Optional

import httpx
from pydantic import BaseModel

from agent_identity import AgentIdentityClient, NoCredentialError, ValidationError

BASE = sys.argv[1]
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


# ---- 1. The published client ----------------------------------------------------------------
client = AgentIdentityClient(base_url=BASE)
check(client.health() is True, "health() is True")

alice = {
    "userId": "user-alice", "resourceId": "crm", "resourceKind": "personal",
    "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "trace-py-1",
}
resolved = client.resolve(dict(alice))  # the client adds requestedAt=datetime.now(timezone.utc).isoformat()
check(resolved == {"ok": True, "credentialId": "cred-user-alice", "resolvedFor": "user-alice", "expiresAt": None},
      f"resolve: {resolved}")

shared = dict(alice, userId="user-bob", resourceKind="shared", action="write")
resolved = client.resolve(shared)
check(resolved["resolvedFor"] == "service" and resolved["expiresAt"] == "2099-01-01T00:00:00Z", f"shared: {resolved}")

pair = client.resolve_migration({
    "migrationId": "migration-2026-q2", "phase": "load", "sourceResourceId": "crm-postgres-prod",
    "targetResourceId": "crm-postgres-v2", "userId": "svc-migration-bot", "provider": "anthropic",
    "model": "claude-sonnet-4-20250514", "traceId": "trace-abc123",
})
check(pair["migrationId"] == "migration-2026-q2" and pair["phase"] == "load", f"pair ids: {pair}")
check(pair["sourceResolvedFor"] == "service" and pair["targetResolvedFor"] == "service", f"pair sides: {pair}")
check(pair["dryRun"] is False and pair["expiresAt"] == "2099-01-01T00:00:00Z", f"pair expiry: {pair}")

try:
    client.resolve({"userId": "user-alice", "resourceKind": "personal"})
    check(False, "a body without required fields raises ValidationError")
except ValidationError as err:
    check(err.status_code == 400, "ValidationError carries 400")
    check("resourceId" in str(err) and "traceId" in str(err), f"the message names the fields: {err}")

try:
    client.resolve(dict(alice, userId="user-bob"))
    check(False, "a context no rule matches raises NoCredentialError")
except NoCredentialError as err:
    check(err.status_code == 403 and "no rule matches" in str(err), f"NoCredentialError: {err}")

try:
    client.resolve_migration({"migrationId": "m", "phase": "deploy"})
    check(False, "a bad migration raises ValidationError")
except ValidationError as err:
    check("phase" in str(err), f"the message names the phase: {err}")


# ---- 2. A pydantic + httpx client that sends nulls ------------------------------------------
class Context(BaseModel):
    userId: str
    resourceId: str
    resourceKind: str
    provider: str
    model: str
    action: str
    traceId: str
    requestedAt: Optional[str] = None
    sessionId: Optional[str] = None
    parentTraceId: Optional[str] = None
    spiffeId: Optional[str] = None


with httpx.Client(base_url=BASE, timeout=10) as http:
    health = http.get("/health")
    check(health.status_code == 200, f"GET /health: {health.status_code}")
    body = health.json()
    check(body["status"] == "ok" and body["ok"] is True, f"health body: {body}")
    check(body["ruleCount"] == body["rulesLoaded"] == 3, f"rule counts: {body}")

    payload = Context(**alice).model_dump()
    check(payload["sessionId"] is None and payload["requestedAt"] is None, "nulls are sent")
    answer = http.post("/api/resolve", json=payload)
    check(answer.status_code == 200, f"resolve with nulls: {answer.status_code} {answer.text}")
    check(answer.json()["credentialId"] == "cred-user-alice", f"resolve with nulls: {answer.text}")
    check(answer.headers.get("cache-control") == "no-store", "no-store on resolve")

print(f"python clients: {checks} checks passed")

"""Verifies an agent-identity attestation with joserfc, a JOSE library of its own.

Reads one JSON object on stdin: {"jwks": ..., "attestation": "<compact JWS>", "context": {...},
"issuer": "..."}. Prints one JSON object: {"ok": true, "header": ..., "claims": ...} when the
signature verifies against the JWKS, the type and issuer are the expected ones, the attestation
has not expired, and its `ctx` is the SHA-256 of the context's canonical JSON; otherwise
{"ok": false, "error": "<why>"}.
"""

import base64
import hashlib
import json
import sys
import time

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet


def digest(context):
    present = {k: v for k, v in context.items() if v is not None}
    canonical = json.dumps(present, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raw = hashlib.sha256(canonical.encode("utf-8")).digest()
    return "sha-256:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def verify(request):
    keys = KeySet.import_key_set(request["jwks"])
    try:
        # Only the two algorithms agent-identity signs with are allowed.
        token = jws.deserialize_compact(request["attestation"], keys, algorithms=["EdDSA", "ES256"])
    except JoseError as err:
        return {"ok": False, "error": type(err).__name__}
    header = token.protected
    claims = json.loads(token.payload)
    if header.get("typ") != "agent-identity-attestation+jwt":
        return {"ok": False, "error": "wrong type"}
    if claims.get("iss") != request["issuer"]:
        return {"ok": False, "error": "wrong issuer"}
    if claims.get("exp", 0) <= time.time():
        return {"ok": False, "error": "expired"}
    if claims.get("ctx") != digest(request["context"]):
        return {"ok": False, "error": "context mismatch"}
    return {"ok": True, "header": header, "claims": claims}


if __name__ == "__main__":
    print(json.dumps(verify(json.load(sys.stdin))))

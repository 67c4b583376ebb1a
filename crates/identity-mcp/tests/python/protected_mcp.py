"""An OAuth-protected MCP server built with the official MCP Python SDK, for the authorizer's
tests: it serves its protected resource metadata (RFC 9728) naming ISSUER, refuses requests
without a valid bearer token with 401 and `resource_metadata`, and checks each token by
introspection at ISSUER (RFC 7662): active, issued for this resource, with `crm:read`.

Usage: python protected_mcp.py ISSUER PORT
"""

import sys

import httpx2

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

ISSUER = sys.argv[1]
PORT = int(sys.argv[2])
RESOURCE = f"http://127.0.0.1:{PORT}/mcp"


class Introspection:
    """Asks the authorization server about each token, as the resource server it names."""

    async def verify_token(self, token: str) -> AccessToken | None:
        async with httpx2.AsyncClient() as client:
            answer = await client.post(
                f"{ISSUER}/token/introspection",
                data={"token": token},
                auth=("web-app", "web-app-secret"),
            )
        body = answer.json()
        if not body.get("active"):
            return None
        audience = body.get("aud")
        if isinstance(audience, list):
            audience = RESOURCE if RESOURCE in audience else None
        return AccessToken(
            token=token,
            client_id=body.get("client_id", ""),
            scopes=(body.get("scope") or "").split(),
            expires_at=body.get("exp"),
            resource=audience,
            subject=body.get("sub"),
        )


server = MCPServer(
    "crm",
    token_verifier=Introspection(),
    auth=AuthSettings(
        issuer_url=ISSUER,
        resource_server_url=RESOURCE,
        required_scopes=["crm:read"],
        validate_token_resource=True,
    ),
)


@server.tool()
def whoami() -> str:
    """The user the token was issued for."""
    token = get_access_token()
    return token.subject if token else "nobody"


server.run("streamable-http", host="127.0.0.1", port=PORT, stateless_http=True, json_response=True)

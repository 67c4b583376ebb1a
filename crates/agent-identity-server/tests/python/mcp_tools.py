"""The official MCP Python SDK as the client of agent-identity's identity tools.

Usage:
  python mcp_tools.py stdio BINARY CONFIG USER CALLS_JSON
  python mcp_tools.py http URL TOKEN CALLS_JSON      (TOKEN "-" for none)
  python mcp_tools.py proxy URL USER CALLS_JSON      (through the sidecar's proxy, as USER)

CALLS_JSON is a list of {"name": ..., "arguments": {...}}. Prints one JSON object: the tools
listed, and for each call its error flag, structured content and text. A refused HTTP request
prints {"httpError": status, "wwwAuthenticate": header} instead.
"""

import json
import os
import sys

import anyio
import httpx2

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def exercise(read, write, calls):
    async with ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        results = []
        for call in calls:
            result = await session.call_tool(call["name"], call.get("arguments") or {})
            results.append(
                {
                    "name": call["name"],
                    "isError": bool(result.is_error),
                    "structured": result.structured_content,
                    "text": " ".join(getattr(block, "text", "") for block in result.content),
                }
            )
        return {"tools": sorted(tool.name for tool in listed.tools), "results": results}


async def over_stdio(binary, config, user, calls):
    # The server is given this process's environment (its secrets' variables among them).
    server = StdioServerParameters(
        command=binary,
        args=["mcp", "--config", config, "--user", user],
        env=dict(os.environ),
    )
    async with stdio_client(server) as (read, write):
        return await exercise(read, write, calls)


async def over_http(url, token, calls):
    headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
    # What the server says to a request without a valid token, before the session.
    async with httpx2.AsyncClient() as probe:
        answer = await probe.post(
            url,
            headers={**headers, "accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 0, "method": "ping"},
        )
        if answer.status_code == 401:
            return {
                "httpError": 401,
                "wwwAuthenticate": answer.headers.get("www-authenticate"),
            }
    async with create_mcp_http_client(headers=headers) as client:
        async with streamable_http_client(url, http_client=client) as streams:
            return await exercise(streams[0], streams[1], calls)


async def through_proxy(url, user, calls):
    async with create_mcp_http_client(headers={"x-agent-identity-user": user}) as client:
        async with streamable_http_client(url, http_client=client) as streams:
            return await exercise(streams[0], streams[1], calls)


async def main():
    mode = sys.argv[1]
    if mode == "proxy":
        url, user, calls = sys.argv[2:5]
        outcome = await through_proxy(url, user, json.loads(calls))
    elif mode == "stdio":
        binary, config, user, calls = sys.argv[2:6]
        outcome = await over_stdio(binary, config, user, json.loads(calls))
    else:
        url, token, calls = sys.argv[2:5]
        outcome = await over_http(url, token, json.loads(calls))
    print(json.dumps(outcome))


anyio.run(main)

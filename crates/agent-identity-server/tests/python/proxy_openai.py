"""The official `openai` package, unchanged but for its base URL, through the sidecar's proxy.

It sends its own API key, as it always does; the sidecar must drop it and put in the user's.
The upstream is the test's own server, answering as the OpenAI API does.

Usage: python proxy_openai.py BASE_URL   (BASE_URL: the sidecar's /proxy/openai)
"""

import sys
import time

from openai import OpenAI

client = OpenAI(
    base_url=sys.argv[1],
    api_key="sk-the-agents-own-key",
    default_headers={"x-agent-identity-user": "alice"},
    max_retries=0,
)

completion = client.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
)
text = completion.choices[0].message.content
if text != "hello alice":
    raise SystemExit(f"FAILED: completion {completion!r}")

started = time.monotonic()
arrivals, pieces = [], []
stream = client.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": "count"}], stream=True
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
        arrivals.append(time.monotonic() - started)
if "".join(pieces) != "one two three":
    raise SystemExit(f"FAILED: streamed {pieces!r}")
# The upstream sends a chunk every 300 ms: chunks that arrived together were held back.
if arrivals[-1] - arrivals[0] < 0.45:
    raise SystemExit(f"FAILED: the chunks arrived together: {arrivals!r}")
print("openai through the proxy: 2 checks passed")

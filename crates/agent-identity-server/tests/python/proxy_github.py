"""PyGithub, unchanged but for its base URL, through the sidecar's proxy.

Its token is the agent's key to the sidecar (bound to a user there); the sidecar drops it and
puts in that user's GitHub token. The upstream is the test's own server, answering as the
GitHub REST API does.

Usage: python proxy_github.py BASE_URL AGENT_KEY   (BASE_URL: the sidecar's /proxy/github)
"""

import sys

from github import Auth, Github

github = Github(base_url=sys.argv[1], auth=Auth.Token(sys.argv[2]), retry=None)

login = github.get_user().login
if login != "alice":
    raise SystemExit(f"FAILED: login {login!r}")

# `lazy=True` builds the repository's URL here: GitHub's answers carry absolute
# api.github.com URLs, which the proxy does not rewrite.
repo = github.get_repo("alice/app", lazy=True)
issue = repo.create_issue(title="filed by the agent")
if (issue.number, issue.title) != (1, "filed by the agent"):
    raise SystemExit(f"FAILED: issue {issue.number} {issue.title!r}")
titles = [issue.title for issue in repo.get_issues()]
if titles != ["filed by the agent"]:
    raise SystemExit(f"FAILED: issues {titles!r}")

print("pygithub through the proxy: checks passed")

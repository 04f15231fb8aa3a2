"""The few GitHub REST calls the review loop makes: one comment per stack updated in place, and
one issue per drifted stack opened, updated and closed.

Plain HTTPS with the workflow's token (GITHUB_TOKEN) against GITHUB_API_URL, which Actions sets
(and the tests point at a local fake).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_API_URL = "https://api.github.com"
PAGE_SIZE = 100
TIMEOUT_SECONDS = 30


class GitHubError(Exception):
    """A GitHub API call failed; the message names the call and GitHub's answer."""


@dataclass(frozen=True)
class GitHub:
    repository: str
    """owner/name."""
    token: str
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_environment(cls, repository: str | None = None) -> GitHub:
        token = os.environ.get("GITHUB_TOKEN", "")
        repo = repository or os.environ.get("GITHUB_REPOSITORY", "")
        if not token:
            raise GitHubError("GITHUB_TOKEN is not set (the workflow passes secrets.GITHUB_TOKEN)")
        if repo.count("/") != 1:
            raise GitHubError(f"repository must be owner/name, got {repo!r} (GITHUB_REPOSITORY)")
        api_url = os.environ.get("GITHUB_API_URL", DEFAULT_API_URL).rstrip("/")
        return cls(repository=repo, token=token, api_url=api_url)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.api_url}/repos/{self.repository}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise GitHubError(f"{method} {path}: HTTP {error.code}: {detail}") from error
        except (urllib.error.URLError, TimeoutError) as error:
            raise GitHubError(f"{method} {path}: {error}") from error
        return json.loads(text) if text else None

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a listing, page by page (GitHub caps a page at 100)."""
        separator = "&" if "?" in path else "?"
        page = 1
        while True:
            items = self.call("GET", f"{path}{separator}per_page={PAGE_SIZE}&page={page}")
            yield from items
            if len(items) < PAGE_SIZE:
                return
            page += 1


def upsert_comment(github: GitHub, issue: int, marker: str, body: str) -> str:
    """Update the comment holding `marker` on issue/PR `issue`, or create it; says which."""
    for comment in github.pages(f"/issues/{issue}/comments"):
        if marker in (comment.get("body") or ""):
            github.call("PATCH", f"/issues/comments/{comment['id']}", {"body": body})
            return "updated"
    github.call("POST", f"/issues/{issue}/comments", {"body": body})
    return "created"


def sync_issue(github: GitHub, marker: str, title: str, body: str | None, labels: list[str]) -> str:
    """Keep one open issue holding `marker`: open or update it with `body`, or close it when
    `body` is None. Returns what it did: opened, updated, closed or none."""
    label_filter = ",".join(labels)
    existing = next(
        (
            issue
            for issue in github.pages(f"/issues?state=open&labels={label_filter}")
            if marker in (issue.get("body") or "") and "pull_request" not in issue
        ),
        None,
    )
    if body is None:
        if existing is None:
            return "none"
        github.call(
            "POST",
            f"/issues/{existing['number']}/comments",
            {"body": "The latest drift check found no drift; closing."},
        )
        github.call("PATCH", f"/issues/{existing['number']}", {"state": "closed"})
        return "closed"
    if existing is None:
        github.call("POST", "/issues", {"title": title, "body": body, "labels": labels})
        return "opened"
    github.call("PATCH", f"/issues/{existing['number']}", {"title": title, "body": body})
    return "updated"

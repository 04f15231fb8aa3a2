"""`python -m review COMMAND`: the review loop's GitHub side, run by .github/workflows/.

  comment       print the PR comment for a preview record (python -m engine preview --record)
  post-comment  create or update that comment on a pull request (one per stack, in place)
  drift-issue   open, update or close the drift issue of a stack from `make drift`'s report

Exit codes: 0 done; 1 bad input or a GitHub API error (named on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.preview_record import PreviewRecord
from review import comment, drift_issue
from review.github import GitHub, GitHubError, sync_issue, upsert_comment

EXIT_ERROR = 1
Parsed = TypeVar("Parsed")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m review", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("comment", help="print the PR comment for a preview record")
    post = commands.add_parser("post-comment", help="create or update the PR comment")
    for sub in (show, post):
        sub.add_argument("--record", type=Path, required=True, help="preview record (JSON)")
        sub.add_argument(
            "--limit", type=int, default=comment.GITHUB_COMMENT_LIMIT, help="max characters"
        )
    post.add_argument("--pr", type=int, required=True, help="pull request number")
    post.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    drift = commands.add_parser("drift-issue", help="sync the stack's drift issue")
    drift.add_argument("--report", type=Path, required=True, help="drift report (JSON)")
    drift.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    drift.add_argument("--run-url", default="", help="link to the run that found it")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        if args.command == "drift-issue":
            stack, body = _parse(
                args.report,
                "drift report",
                lambda report: (
                    report["stack"],
                    drift_issue.render(report, args.run_url) if report["drifted"] else None,
                ),
            )
            done = sync_issue(
                GitHub.from_environment(args.repo),
                drift_issue.marker(stack),
                drift_issue.title(stack),
                body,
                drift_issue.LABELS,
            )
            print(f"review: drift issue of stack {stack}: {done}")
            return 0
        record, body = _parse(
            args.record,
            "preview record",
            lambda data: _commented(data, args.limit),
        )
        if args.command == "comment":
            sys.stdout.write(body)
            return 0
        done = upsert_comment(
            GitHub.from_environment(args.repo), args.pr, comment.marker(record.stack), body
        )
        print(f"review: comment for stack {record.stack} on #{args.pr}: {done}")
        return 0
    except (GitHubError, BadInputError) as error:
        print(f"review: {error}", file=sys.stderr)
        return EXIT_ERROR


class BadInputError(Exception):
    """A record or report that is missing, not JSON, or not of the expected shape."""


def _commented(data: dict[str, Any], limit: int) -> tuple[PreviewRecord, str]:
    record = PreviewRecord.from_json(data)
    return record, comment.render(record, limit)


def _parse(path: Path, kind: str, read: Callable[[dict[str, Any]], Parsed]) -> Parsed:
    """`read` applied to the JSON object in `path`; a file of another shape (foreign, of an
    older version, edited by hand) is a BadInputError naming the file and what is wrong."""
    data = _load(path)
    try:
        return read(data)
    except KeyError as error:
        raise BadInputError(f"{path} is not a {kind}: it has no {error.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as error:
        raise BadInputError(f"{path} is not a {kind}: {error}") from None


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise BadInputError(f"cannot read {path}: {error.strerror}") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path} is not JSON: {error}") from error
    if not isinstance(data, dict) or "stack" not in data:
        raise BadInputError(f"{path} is not a preview record or drift report (no 'stack')")
    return data


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""kube-apiserver's audit log, kept for RAP's clients only: exact requests per RAP process.

``apiserver_request_total`` has no label for the client, so the harness also
runs kube-apiserver with an audit policy that records, at level Metadata, the
requests of the group every RAP process authenticates in (the node proxies'
``rap:node-proxies``, and the aggregator's credential) and nothing else.
Counting a window's ``ResponseComplete`` events per user gives each RAP
node's own requests, exact, whatever KWOK does meanwhile; a WATCH is counted
apart (its ResponseComplete comes when it ends). Pure parsing here; the file
is read by byte offsets (``AuditLog``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rap.localcluster import pki


def policy(groups=(pki.PROXY_GROUP,), users=()) -> str:
    """An audit.k8s.io/v1 Policy: Metadata for the requests of ``groups`` and ``users``, nothing for anyone else."""
    rules = [{"level": "Metadata", "userGroups": list(groups)}]
    if users:
        rules.append({"level": "Metadata", "users": list(users)})
    doc = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
           "rules": [*rules, {"level": "None"}]}
    return json.dumps(doc, indent=1) + "\n"  # JSON is YAML


def apiserver_flags(policy_file: Path, log_file: Path) -> tuple[str, ...]:
    return (f"--audit-policy-file={policy_file}", f"--audit-log-path={log_file}", "--audit-log-format=json",
            "--audit-log-maxsize=0", "--audit-log-maxbackup=0")


@dataclass
class Counts:
    """Per user: requests answered (WATCH excluded) and watches started, and per user the requests by kind."""

    requests: Counter = field(default_factory=Counter)
    watches: Counter = field(default_factory=Counter)
    by_request: dict[str, Counter] = field(default_factory=dict)


def count(lines) -> Counts:
    """Tally audit events (JSON lines); lines that are not whole JSON objects are skipped."""
    out = Counts()
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict):
            continue
        user = (ev.get("user") or {}).get("username", "")
        verb, stage = ev.get("verb", ""), ev.get("stage", "")
        if verb == "watch":
            if stage == "ResponseStarted":
                out.watches[user] += 1
            continue
        if stage != "ResponseComplete":
            continue
        out.requests[user] += 1
        ref = ev.get("objectRef") or {}
        what = f"{verb} {ref.get('apiGroup') or 'core'}/{ref.get('resource') or ev.get('requestURI', '?')}"
        out.by_request.setdefault(user, Counter())[what] += 1
    return out


class AuditLog:
    """The audit file read between two byte offsets: ``mark()`` then ``since(mark)``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def since(self, offset: int) -> Counts:
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return Counts()
        # Only whole lines: a line still being written belongs to the next window's reader.
        data = data[:data.rfind(b"\n") + 1]
        return count(data.decode(errors="replace").splitlines())

"""The example app's nightly job: run on its own, in a sandbox (``python3 -m jobs`` with the
app mounted read-only), never imported by the app itself or its tests. It reads users as
JSON lines on stdin and prints how many have an address at each domain."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable


def domains_report(lines: Iterable[str]) -> str:
    counts: Counter[str] = Counter()
    for line in lines:
        if not line.strip():
            continue
        email = json.loads(line)["email"]
        counts[email.rsplit("@", 1)[-1].lower()] += 1
    return "\n".join(f"{domain} {n}" for domain, n in sorted(counts.items()))


if __name__ == "__main__":
    print(domains_report(sys.stdin))

"""Analytics summary shape served by GET /analytics/summary (new in 1.1.0)."""

STATUSES = ("queued", "extracted", "failed")


def summary(workspaces: int, members: int, by_status: dict[str, int]) -> dict:
    return {
        "workspaces": workspaces,
        "documents": {s: int(by_status.get(s, 0)) for s in STATUSES},
        "members": members,
    }

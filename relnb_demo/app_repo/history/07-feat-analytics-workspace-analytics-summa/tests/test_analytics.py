from docflow.analytics import summary


def test_summary_fills_missing_statuses():
    out = summary(2, 3, {"extracted": 5})
    assert out == {"workspaces": 2, "documents": {"queued": 0, "extracted": 5, "failed": 0}, "members": 3}

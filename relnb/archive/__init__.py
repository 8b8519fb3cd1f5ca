"""The sealed release record: export, manifest, seal, verify, replay, changelog, incidents, review.

Heavy work (rendering, git, subprocesses) happens inside functions; importing this package only
loads the standard library and relnb's core.
"""

from ..metrics.svgchart import Chart
from .changelog import f3_changelog, insert_section, render_section, update_changelog
from .commands import add_list_args, add_verify_args, only_open_release, open_releases
from .commands import register as register_commands
from .incidents import (
    IncidentList,
    evaluate_incidents,
    f2_incidents,
    incidents_from_events,
    test_exists,
    update_incident,
    waive_incident_test,
)
from .index import read_index, rebuild_index
from .record import ArchiveView
from .replay import ArchivedOutcomes, ReplayReport, replay_archive
from .seal import AlreadySealed, ArchiveBlocked, ArchiveResult, archive, archive_release, scan_text
from .verify import ArchiveReport, Problem, verify_all, verify_release_dir

__all__ = [
    "AlreadySealed",
    "ArchiveBlocked",
    "ArchiveReport",
    "ArchiveResult",
    "ArchiveView",
    "ArchivedOutcomes",
    "Chart",
    "IncidentList",
    "Problem",
    "ReplayReport",
    "add_list_args",
    "add_verify_args",
    "archive",
    "archive_release",
    "evaluate_incidents",
    "f2_incidents",
    "f3_changelog",
    "incidents_from_events",
    "insert_section",
    "only_open_release",
    "open_releases",
    "read_index",
    "rebuild_index",
    "register_commands",
    "render_section",
    "replay_archive",
    "scan_text",
    "test_exists",
    "update_changelog",
    "update_incident",
    "verify_all",
    "verify_release_dir",
    "waive_incident_test",
]

"""``messaging_status`` on the event store: follower positions against their leader's head."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.eventstore.test_sync_followers import RunnerCase, sync


def _lag() -> dict[tuple[str, str], tuple[int, int, int]]:
    """(follower, leader) -> (position, head, lag)."""
    out = StringIO()
    call_command("messaging_status", "--json", "--package", "eventstore", stdout=out)
    by_pair: dict[tuple[str, str], dict[str, float]] = {}
    for figure in json.loads(out.getvalue())["figures"]:
        pair = (figure["labels"]["follower"], figure["labels"]["leader"])
        by_pair.setdefault(pair, {})[figure["metric"]] = figure["value"]
    return {
        pair: (
            int(f["eventstore_follower_position"]),
            int(f["eventstore_leader_head"]),
            int(f["eventstore_follower_lag"]),
        )
        for pair, f in by_pair.items()
    }


class TestFollowerLag(RunnerCase):
    def test_positions_against_the_head(self) -> None:
        self.teach("Fido", "roll over", "play dead")  # 3 events of TrainingSchool
        # Nothing processed yet: the runner's followers are at 0.
        assert _lag() == {
            ("Registrar", "TrainingSchool"): (0, 3, 3),
            ("TrickCounter", "TrainingSchool"): (0, 3, 3),
        }
        sync("TrickCounter")
        self.school.add_trick("Fido", "sit")
        assert _lag() == {
            ("Registrar", "TrainingSchool"): (0, 4, 4),
            ("TrickCounter", "TrainingSchool"): (3, 4, 1),
        }
        with pytest.raises(CommandError) as raised:
            call_command(
                "messaging_status", "--package", "eventstore", "--max-lag", "2", stdout=StringIO()
            )
        assert raised.value.returncode == 1
        assert "follower=Registrar leader=TrainingSchool) = 4 > 2" in str(raised.value)
        sync()
        assert {lag for _, _, lag in _lag().values()} == {0}
        call_command(
            "messaging_status", "--package", "eventstore", "--max-lag", "0", stdout=StringIO()
        )

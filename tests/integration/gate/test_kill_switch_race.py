"""Kill-switch race: 50 concurrent send decisions, the switch activated in the middle.

The audit chain orders what committed: every append locks the chain head until its
transaction commits, so sequence numbers follow commit order. No allowed decision may have a
higher sequence number than the activation.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from shared.audit.schemas import Actor, ActorType
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.policy.gate import GateOutcome, check_send
from shared.policy.kill_switch import activate_kill_switch
from shared.policy.schemas import KillSwitchChange
from tests.integration.gate.conftest import ACTOR, events, make_sender

SENDS = 50
ACTIVATE_AFTER = 15
STAGGER_SECONDS = 0.004
MANAGER = Actor(type=ActorType.USER, id=str(uuid.uuid4()), display="manager")


def test_no_allow_commits_after_the_activation(database: DatabaseUrls) -> None:
    sender = make_sender("race")
    completed = 0
    lock = threading.Lock()
    halfway = threading.Event()
    outcomes: list[GateOutcome] = []

    def send(index: int) -> None:
        nonlocal completed
        # Staggered starts leave the moments between share locks that an activation needs:
        # PostgreSQL lets new FOR SHARE lockers join a held share lock ahead of a waiting
        # writer, so back-to-back decisions could otherwise hold it off to the end.
        time.sleep(STAGGER_SECONDS * index)
        with tenant_unit_of_work(sender.tenant_id) as uow:
            result = check_send(uow, sender.request(f"r{index}@prospect.example"), ACTOR)
        with lock:
            outcomes.append(result.outcome)
            completed += 1
            if completed >= ACTIVATE_AFTER:
                halfway.set()

    def activate() -> None:
        halfway.wait(timeout=60)
        with tenant_unit_of_work(sender.tenant_id) as uow:
            activate_kill_switch(uow, KillSwitchChange(reason="race"), MANAGER)

    with ThreadPoolExecutor(max_workers=9) as pool:
        activation = pool.submit(activate)
        list(pool.map(send, range(SENDS)))
        activation.result()

    ((activation_seq, _),) = events(sender.tenant_id, "KILL_SWITCH_ACTIVATED")
    decisions = events(sender.tenant_id, "POLICY_EVALUATED")
    assert len(decisions) == SENDS
    allowed_after = [
        seq for seq, payload in decisions if seq > activation_seq and payload["decision"]["allowed"]
    ]
    before = [seq for seq, _ in decisions if seq < activation_seq]
    after = [seq for seq, _ in decisions if seq > activation_seq]
    assert allowed_after == []
    assert len(before) >= ACTIVATE_AFTER
    assert after, "the activation must land while decisions are still running"
    assert outcomes.count(GateOutcome.ALLOWED) == len(before)

"""`--steps` is a budget: the fleet takes exactly that many steps, whatever the order allowances arrive in, whichever
robots wait or are replaced, and every count (console, report) agrees."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import point_config
from workers.budget import StepBudget
from workers.launch import run_loop


class Robot:
    """A robot as workers.robot keeps its allowance: the newest sequence number wins, never below its own steps."""

    def __init__(self) -> None:
        self.steps, self.allowed, self.seq = 0, 0, 0
        self.inbox: list[tuple[int, int]] = []

    def deliver(self, rng: random.Random) -> None:
        rng.shuffle(self.inbox)  # Ray's threaded actors run calls in any order
        for allowed, seq in self.inbox[:rng.randint(0, len(self.inbox))]:
            if seq > self.seq:
                self.allowed, self.seq = max(self.steps, allowed), seq
            self.inbox.remove((allowed, seq))


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 400), robots=st.integers(1, 6), lead=st.integers(1, 50), seed=st.integers(0, 2**32))
def test_robots_never_take_more_than_the_budget_and_take_all_of_it(total, robots, lead, seed):
    rng = random.Random(seed)
    budget, fleet = StepBudget(total, robots, lead), [Robot() for _ in range(robots)]
    retired = 0  # steps of replaced robots
    for _ in range(20 * total + 200):
        for robot in fleet:
            robot.deliver(rng)
            robot.steps += rng.randint(0, 3) if robot.steps < robot.allowed else 0
            robot.steps = min(robot.steps, robot.allowed)
        assert retired + sum(r.steps for r in fleet) <= total
        for i, robot in enumerate(fleet):
            if rng.random() < 0.3:  # a poll that reached this robot
                budget.seen(i, robot.steps, robot.allowed, robot.seq)
        if rng.random() < 0.01:  # a robot dies and is replaced: its steps stay, its unsent inbox is lost
            i = rng.randrange(robots)
            budget.seen(i, fleet[i].steps, fleet[i].allowed, fleet[i].seq)
            retired += fleet[i].steps
            budget.replaced(i)
            fleet[i] = Robot()
        # some robots wait for help or hold; the last stretch, everyone can step (else nobody could finish)
        stepping = {i for i in range(robots) if rng.random() < 0.7} or {0}
        for i, allowed, seq in budget.grants(stepping):
            fleet[i].inbox.append((allowed, seq))
        if budget.taken == total:
            break
    assert budget.taken == retired + sum(r.steps for r in fleet) == total


def test_a_waiting_robot_gives_back_its_unused_steps_when_another_runs_dry():
    budget = StepBudget(10, robots=2, lead=100)
    grants = budget.grants({0, 1})
    assert sorted(a for _, a, _ in grants) == [5, 5] and budget.left == 0
    budget.seen(0, steps=5, allowed=5, seq=1)
    budget.seen(1, steps=2, allowed=5, seq=1)  # robot 1 now waits for an operator with 3 steps unused
    assert budget.grants({0}) == [(1, 2, 2)]  # nothing is given on until robot 1 confirms the give-back
    assert budget.grants({0}) == [] and budget.left == 0
    budget.seen(1, steps=2, allowed=2, seq=2)
    assert budget.grants({0}) == [(0, 8, 2)] and budget.left == 0


def test_an_in_process_run_takes_exactly_its_steps_and_every_count_agrees(tmp_path):
    seen: list[dict] = []
    summary = run_loop(point_config("robots=3", "steps=1001", "eval.every_versions=0"), tmp_path / "run",
                       on_status=seen.append)
    assert summary["steps"] == 1001 == seen[-1]["steps"] == sum(r["steps"] for r in seen[-1]["robots"].values())


def test_the_report_counts_steps_taken_but_not_recorded_beside_the_stored_ones():
    from dagger.metrics import summarize

    def segment(seq, steps, unrecorded):
        return {"ev": "segment", "t": float(seq), "robot": 0, "seq": seq, "episode": 0, "controller": "policy",
                "reason": "size", "steps": steps, "t_start": float(seq), "t_end": float(seq), "versions": [[1, steps]],
                "unrecorded": unrecorded}

    events = [{"ev": "run_start", "t": 0.0, "robots": 1}, segment(1, 10, 0), segment(2, 7, 3),
              {"ev": "steps_unrecorded", "t": 3.0, "robot": 0, "steps": 2}, {"ev": "run_end", "t": 4.0}]
    summary = summarize(events)
    assert (summary["steps"], summary["unrecorded_steps"]) == (17, 5)  # the robot took 22 steps; 17 are stored

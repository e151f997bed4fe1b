"""The live loop's violation risk: with an allocator that reads it (C.U.R.), the learner trains the policy's hazard
critic on every step's transition, and robots report it; with one that does not, the critic is left alone."""

import numpy as np
import torch

from dagger.checkpoint import policy_from, read_checkpoint
from dagger.config import load_config
from dagger.policies import EnsemblePolicy
from dagger.tasks import make_task
from workers.launch import run_loop

# point-obstacle observations: position, velocity, goal − position, obstacle centre (origin) − position
STUCK = np.array([-0.45, 0.0, 0.0, 0.0, 1.45, 0.0, 0.45, 0.0], np.float32)  # against the obstacle
FAR = np.array([0.9, 0.05, 0.0, 0.0, 0.1, -0.05, -0.9, -0.05], np.float32)  # past it, at the goal


def cloned_run(tmp_path, allocator: str):
    """Ten demonstrations of both detours: the clone averages them and often drives into the obstacle; the gate
    never asks, so the robots' own steps (and violations) fill the transitions."""
    cfg = load_config(None, ["task=point-obstacle", "robots=4", "steps=3000", "demos=10", f"allocator={allocator}",
                             "gate.threshold=10", "eval.every_versions=0", "log.writers=[]"])
    run_loop(cfg, tmp_path)
    return cfg, policy_from(read_checkpoint(tmp_path), make_task("point-obstacle"))


def test_cur_trains_the_hazard_critic_on_the_robots_violations(tmp_path):
    _, policy = cloned_run(tmp_path, "cur")
    assert policy.act(STUCK).risk > 0.8  # a violation every step from here
    assert policy.act(FAR).risk < 0.1


def test_an_allocator_that_reads_no_risk_leaves_the_hazard_critic_untrained(tmp_path):
    cfg, policy = cloned_run(tmp_path, "priority")
    fresh = EnsemblePolicy(8, 2, cfg.policy, seed=cfg.seed)
    for trained, initial in zip(policy.hazard.net.parameters(), fresh.hazard.net.parameters(), strict=True):
        assert torch.equal(trained, initial)

"""Behavior-cloning baseline: the robot never asks."""

from dagger.gates.base import BaseGate


class NeverGate(BaseGate):
    name = "never"
    robot_gated = False

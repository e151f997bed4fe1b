"""HG-DAgger: the robot never asks; the operator takes over when it judges the robot wrong."""

from dagger.gates.base import BaseGate


class HumanGate(BaseGate):
    name = "human"
    human_gated = True
    robot_gated = False

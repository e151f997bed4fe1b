"""dagger: fleet-scale interactive imitation learning."""

from dagger.envs import register_envs

__version__ = "0.1.0"

register_envs()  # gymnasium.make("dagger/Reacher-v0"): registration imports no physics

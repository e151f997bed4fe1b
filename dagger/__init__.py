"""dagger: fleet-scale interactive imitation learning."""

__version__ = "0.1.0"

"""Actors of the loop (robot, buffer, learner) and the supervisor; Ray lives only in ray_fleet.py."""

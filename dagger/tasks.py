"""The task registry: every task by name, made from its settings (`task.*`). Tasks are gymnasium-API environments
with a success signal and a scripted expert (dagger.core.Task); each family lives in its own module.

    task = make_task("reach")                     # Meta-World reach-v3: a Sawyer arm to a goal (the demo)
    task = make_task(TaskConfig("reacher-image", camera_jitter=4))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagger.core import Task
from dagger.metaworld_tasks import METAWORLD_TASKS, MetaWorldTask  # each imports no physics until a task is made
from dagger.point_tasks import DISTRACTOR_MODES, PointDistractorTask, PointObstacleTask, PointTask
from dagger.reacher_tasks import ReacherImageTask, ReacherJointTask, ReacherTask


@dataclass
class TaskConfig:
    name: str = "reach"
    """the task the robots run: reach | push | pick-place | drawer-open (Meta-World; reach is the demo) | reacher |
    reacher-image (its target seen by a camera only) | reacher-joint (joint targets and a press: a leader arm's) |
    point | point-obstacle | point-distractor (numpy); `task=point` is short for `task.name=point`"""
    camera_jitter: float = 0.0
    """image tasks: each episode the policy's camera moves from its pose by up to this many cm and turns by up to
    this many degrees (0: a fixed camera)"""
    distractor: str = "train"
    """point-distractor: where its marker sits: train (on the goal in training episodes, at random on evaluation
    seeds) | aligned (always on the goal) | random"""


def _metaworld(env_name: str) -> Callable[[TaskConfig], Task]:
    def make(_: TaskConfig) -> Task:
        return MetaWorldTask(env_name)
    return make


TASKS: dict[str, Callable[[TaskConfig], Task]] = {
    "point": lambda _: PointTask(),
    "point-obstacle": lambda _: PointObstacleTask(),
    "point-distractor": lambda cfg: PointDistractorTask(cfg.distractor),
    "reacher": lambda _: ReacherTask(),
    "reacher-image": lambda cfg: ReacherImageTask(cfg.camera_jitter),
    "reacher-joint": lambda _: ReacherJointTask(),
    **{name: _metaworld(env) for name, env in METAWORLD_TASKS.items()},
}
MUJOCO_TASKS = {"reacher", "reacher-image", "reacher-joint", *METAWORLD_TASKS}
"""tasks that step MuJoCo (and render through OpenGL)"""
TASK_IMAGES: dict[str, tuple[int, int, int]] = {"reacher-image": (64, 64, 3)}
"""image tasks and their camera images' shape (what a learner needs to know without making the task)"""
TASK_DEFAULTS: dict[str, list[str]] = {"reacher-image": ["robot.speed=1", "learner.batch_size=16",
                                                       "learner.max_updates_per_s=25"],
                                     **{name: ["learner.label_window=5"] for name in METAWORLD_TASKS}}
"""settings a task starts from (a config file and overrides still win): image robots render every step, so they run
in real time, and a CNN update on 16 images per member stays near 40 ms on one core: about 25 a second, which an
in-process run (training at that rate of simulated time) must not exceed either. Meta-World's scripted commands are
smooth, so a person's labels there train as the mean of 5 steps (on reach: 0.87 -> 0.94 policy-alone success from
the same label states; README, Label efficiency)"""


def make_task(cfg: TaskConfig | str) -> Task:
    """A task from its settings, or from its name with default settings."""
    cfg = TaskConfig(cfg) if isinstance(cfg, str) else cfg
    if cfg.name not in TASKS:
        raise ValueError(f"unknown task {cfg.name!r}; choose one of {sorted(TASKS)}")
    return TASKS[cfg.name](cfg)


__all__ = ["DISTRACTOR_MODES", "MUJOCO_TASKS", "TASKS", "TASK_DEFAULTS", "TASK_IMAGES", "TaskConfig", "make_task"]

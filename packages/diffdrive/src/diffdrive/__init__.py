"""diffdrive: DiffusionDrive's truncated, anchored diffusion planner on highway-env.

``Planner.load()`` gives the shipped DiffusionDrive planner; ``make_env`` a
headless highway-env scenario whose observations are diffdrive scene vectors.
Importing this package loads no model and does not import gradio.
"""

from diffdrive.controller import TrackingController
from diffdrive.errors import AnchorMismatchError, ObservationError, UnknownScenarioError
from diffdrive.planner import PLANNERS, DrivingPolicy, Plan, Planner
from diffdrive.scenarios import SCENARIOS, make_env
from diffdrive.scene import SCENE_DIM, Scene, observe

__all__ = [
    "PLANNERS",
    "SCENARIOS",
    "SCENE_DIM",
    "AnchorMismatchError",
    "DrivingPolicy",
    "ObservationError",
    "Plan",
    "Planner",
    "Scene",
    "TrackingController",
    "UnknownScenarioError",
    "make_env",
    "observe",
]

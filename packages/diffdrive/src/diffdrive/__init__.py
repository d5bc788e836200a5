"""diffdrive: DiffusionDrive's truncated, anchored diffusion planner on highway-env.

``Planner.load()`` gives the shipped DiffusionDrive planner; ``make_env`` a
headless highway-env scenario whose observations are diffdrive scene vectors.
Importing this package loads no model and does not import gradio.
"""

from diffcore.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "diffdrive.controller": ["TrackingController"],
        "diffdrive.errors": ["AnchorMismatchError", "ObservationError", "UnknownScenarioError"],
        "diffdrive.planner": ["PLANNERS", "DrivingPolicy", "Plan", "Planner"],
        "diffdrive.scenarios": ["SCENARIOS", "make_env"],
        "diffdrive.scene": ["SCENE_DIM", "Scene", "observe"],
    },
)

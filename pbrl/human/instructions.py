"""The question a person sees above the clips when the experiment gives none, per task.

Each names what the task's own reward pays for, in words a person can judge from a clip, so that
``pbrl-train env.id=Walker2d-v5 teacher=human`` asks about walking, not "the better behaviour".
Keyed by the gymnasium id without its version; ``teacher.instruction`` or an experiment's
``instruction`` replaces it.
"""

from __future__ import annotations

GENERIC = "Which clip shows the better behaviour?"

INSTRUCTIONS = {
    "Hopper": "Which hopper hops forward faster, without falling over?",
    "Walker2d": "Which walker walks forward faster, staying upright?",
    "HalfCheetah": "Which cheetah runs forward faster?",
    "Ant": "Which ant moves forward faster, without flipping over?",
    "Humanoid": "Which humanoid walks forward faster, without falling?",
    "HumanoidStandup": "Which humanoid gets its body higher up from the ground?",
    "Swimmer": "Which swimmer swims forward faster?",
    "Reacher": "Which arm brings its fingertip closer to the target, with smaller motions?",
    "Pusher": "Which arm pushes the object closer to the target?",
    "InvertedPendulum": "Which cart keeps the pole upright?",
    "InvertedDoublePendulum": "Which cart keeps both poles balanced upright?",
    "Pendulum": "Which pendulum is closer to standing upright and still?",
    "MountainCarContinuous": "Which car gets higher up the right hill, towards the flag?",
}


def default_instruction(env_id: str) -> str:
    """The instruction for ``env_id`` (e.g. ``Hopper-v5`` or ``gymnasium/Hopper-v5``), else the generic question."""
    name = env_id.split("/")[-1].split(":")[-1].rsplit("-v", 1)[0]
    return INSTRUCTIONS.get(name, GENERIC)

"""The preference loop, for any agent: the feedback schedule and its phases, feedback rounds, reward sources.

- ``schedule``: PEBBLE's phases (seed, pretrain, waiting for the first round, learning) and when rounds come;
- ``learner``: one round: queries from the episode store, the teacher's labels, the reward model's training;
- ``feedback``: the reward side of a run: which reward the agent learns from now, and the rounds.
"""

from pbrl.preference.feedback import EnvFeedback, PreferenceFeedback, make_feedback, preference_mode  # noqa: F401
from pbrl.preference.learner import PreferenceLearner, validate  # noqa: F401
from pbrl.preference.schedule import FeedbackSchedule, Phase  # noqa: F401

"""pbrl: preference-based reinforcement learning for continuous control."""

__version__ = "0.1.0"

import warnings as _warnings

# conf/hydra/launcher/{joblib,submitit_local,ray}.yaml take the plugins' names on purpose (hydra/launcher=joblib
# gets our defaults); hydra 1.3 then checks each against the plugin's schema of that name and warns on every
# composition that this matching is deprecated. It still works in 1.3, which setup.cfg pins.
_warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema")

"""langevin-harness: does (Layer) Langevin noise help very deep networks train, and from what depth on.

Importing the package quiets TensorFlow's start-up noise and MLflow's telemetry unless the user set
those variables already.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

__version__ = "0.1.0"

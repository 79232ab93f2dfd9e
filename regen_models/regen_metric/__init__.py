"""The REGEN `evaluate` module (`regen_metric.py`) and the metric definitions it shares with
`regen_models.metrics` (`metric_definitions.py`). This folder is also a Hub Space as it stands."""

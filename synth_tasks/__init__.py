"""synth_tasks: the logic of the synthetic-data DAGs, importable and testable without Airflow."""

__version__ = "0.1.0"

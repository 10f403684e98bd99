"""Prefect flows: connect the tasks; no science here. ``cycle`` runs the stages as subflows."""

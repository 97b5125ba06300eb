"""MLflow, and only here: the store (`store`), the runs of a study (`runs`), and what a run records of its code and data (`provenance`)."""

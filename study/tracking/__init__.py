"""MLflow, and only here: the store (`store`), the runs of a study (`runs`), the typed settings a launch hands its trials (`settings`), and what a run records of its code and data (`provenance`)."""

"""A study's MLflow runs as pandas, then the paper's tables and figures: `python -m analysis tables|figures|summary STUDY`."""

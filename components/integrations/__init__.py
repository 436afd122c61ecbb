"""What the stages talk to outside this project: MLflow (``tracking``: runs, metrics, the pyfunc
wrapper; ``registry``: versions, aliases, the promotion rule), object storage (``storage``, and
``cache`` of per-video results on a directory or ``s3://`` prefix), Supervisely (``sources``: where a
project or cohort comes from; ``supervisely_project``: reading a project's annotations) and the
model mirrors (``mirror``: an ``s3://`` prefix or directory, and Team Files)."""

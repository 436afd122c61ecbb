"""Container images of the components: the tag is set here and nowhere else."""

import os

IMAGE_TAG = os.environ.get("MAR_IMAGE_TAG", "0.1.0")
IMAGE_REPO = os.environ.get("MAR_IMAGE_REPO", "mar")
CPU_IMAGE = f"{IMAGE_REPO}/mar-cpu:{IMAGE_TAG}"
GPU_IMAGE = f"{IMAGE_REPO}/mar-cuda:{IMAGE_TAG}"

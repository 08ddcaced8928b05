"""Networks, losses and the models that turn a batch into losses. Importing the package registers them all."""

from models import (
    networks,  # noqa: F401  (registers generators and discriminators)
    pix2pixhd_model,  # noqa: F401  (registers the pix2pixHD model)
)

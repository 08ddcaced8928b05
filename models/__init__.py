"""Networks, losses and the models that turn a batch into losses. Importing the package registers them all."""

from synth.models import (
    ecgan_model,  # noqa: F401  (registers the ECGAN model)
    ghfeat_model,  # noqa: F401  (registers the GH-Feat models)
    modulated_model,  # noqa: F401  (registers the modulated model)
    networks,  # noqa: F401  (registers generators and discriminators)
    pix2pixhd_model,  # noqa: F401  (registers the pix2pixHD model)
    selfcond_model,  # noqa: F401  (registers the self-conditioned model)
)

"""Small helpers shared by the training code: device and precision choice, run provenance."""

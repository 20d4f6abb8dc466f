"""Training of SiamFC networks: losses, the epoch loop, distributed setup."""

"""mmneuro: shared latent spaces of mouse ultrasonic vocalizations and neural activity."""

__version__ = "0.1.0"

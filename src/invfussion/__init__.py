"""invfussion: one degradation-aware diffusion model for linear inverse problems in imaging."""

__version__ = "0.1.0"

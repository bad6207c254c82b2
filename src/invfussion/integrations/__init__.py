"""Bridges to other libraries; each submodule needs its library and is imported on its own.

- :mod:`invfussion.integrations.deepinv`: deepinv physics as invfussion operators, invfussion
  models as deepinv reconstructors and denoisers (``pip install "invfussion[deepinv]"``).

Nothing here is imported by the core package.
"""

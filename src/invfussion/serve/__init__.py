"""``invfussion serve``: a web page to restore an image in the browser.

Pick an embedded MNIST test digit or upload an image, choose a degradation (paint a mask, or a
spec such as ``motion-blur:stride=2``) and σ_y, and see A⁺y, posterior samples, the MMSE, the
per-pixel standard deviation and principal directions, with a progress bar while sampling.
Standard library HTTP server + one static HTML page (``index.html``); see ``docs/serve.md``.

    from invfussion.serve import make_server
    server = make_server(port=0, steps=8)     # loads the models, binds a free port
    print(server.url); server.serve_forever()
"""

from .server import RestorationServer, make_server, serve
from .service import RestorationService, load_service

__all__ = ["RestorationServer", "RestorationService", "load_service", "make_server", "serve"]

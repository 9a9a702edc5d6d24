"""What the serving processes run (`daphne chatsite.serving:application`): the ASGI
application (chatsite/asgi.py), in a process tuned for serving it.

The garbage collector's full passes walked every object the imports made (~170k): 90-230
ms each, every stream stalled meanwhile, and with the young generation collected every
700 allocations, ~0.9 s of each serving process's 5.5 s of CPU with 500 replies at once
(gc.callbacks timings). What is made by now lives as long as the process: frozen,
collections skip it; and the young generation is collected 14x less often (~0.2 s).
Not in chatsite/asgi.py: the test suite imports that, and keeps Python's defaults.
"""

import gc

from chatsite.asgi import application

gc.freeze()
gc.set_threshold(10_000, 10, 10)

__all__ = ["application"]

"""`python -m bench`: what `./run bench` runs."""

import sys

from bench.runner import main

sys.exit(main())

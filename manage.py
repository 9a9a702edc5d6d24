#!/usr/bin/env python
"""Django's manage.py, the same as `./run manage`: a command uses the running app's
embedded Redis and local model, or an embedded Redis of its own while it runs when
nothing is running and REDIS_URL is not set."""

import sys


def main() -> int:
    from chatsite.launcher import environment_load, manage

    environment_load()
    return manage(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

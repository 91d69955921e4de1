"""python3 -m rap.sim: see rap.sim.run."""

import sys

from rap.sim.run import main

sys.exit(main())

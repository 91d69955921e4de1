"""``python3 -m rap.localcluster.metrics``: runs the metrics server's command line (``cli.main``)."""

import sys

from rap.localcluster.metrics.cli import main

sys.exit(main())

import sys

from rap.pyproxy.cli import main

sys.exit(main())

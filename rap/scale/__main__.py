import sys

from rap.scale.cli import main

sys.exit(main())

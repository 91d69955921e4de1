from rap.localcluster.haproxy.cli import main

raise SystemExit(main())

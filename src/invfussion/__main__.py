from invfussion.cli import main

raise SystemExit(main())

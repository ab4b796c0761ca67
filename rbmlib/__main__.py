from rbmlib.cli import main

raise SystemExit(main())

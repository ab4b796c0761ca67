from rbmlib.report.pipeline import main

raise SystemExit(main())

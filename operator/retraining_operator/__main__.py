from retraining_operator.cli import main

raise SystemExit(main())

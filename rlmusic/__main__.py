from rlmusic.cli import main

raise SystemExit(main())

"""``python -m lshprof`` is the ``lshprof`` command."""

from lshprof.cli.app import main

raise SystemExit(main())

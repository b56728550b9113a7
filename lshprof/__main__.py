"""``python -m lshprof`` is the ``lshprof`` command."""

from .cli import main

raise SystemExit(main())

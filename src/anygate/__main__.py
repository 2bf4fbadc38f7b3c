"""``python -m anygate`` runs the proxy, like the ``anygate`` command."""

from anygate.server.cli import main

raise SystemExit(main())

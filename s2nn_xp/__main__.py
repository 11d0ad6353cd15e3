"""``python -m s2nn_xp``: the ``s2nn-xp`` command."""

from ._cli import main

raise SystemExit(main())
